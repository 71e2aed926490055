-- gapsync capture golden file: dialect postgres, rendered by gapsync_sender::capture::ddl.
-- Regenerate: GAPSYNC_BLESS=1 cargo test -p gapsync-sender --test capture_golden
-- Table plant_main -> mis_plant, key (id, name), layout 7; columns: id int, name text, value float, amount decimal, raw binary, day date, tod time, Read At timestamp, at_utc timestamptz, flag bool

-- base_ddl
CREATE TABLE IF NOT EXISTS _gapsync_changes(id BIGSERIAL PRIMARY KEY, tbl VARCHAR(255) NOT NULL, op CHAR(1) NOT NULL, layout INTEGER NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now(), txid BIGINT NOT NULL DEFAULT txid_current(), batch BIGINT NULL);
CREATE INDEX IF NOT EXISTS _gapsync_changes_batch ON _gapsync_changes(batch);
CREATE TABLE IF NOT EXISTS _gapsync_layouts(layout INTEGER PRIMARY KEY, tbl VARCHAR(255) NOT NULL, cols TEXT NOT NULL, keycols TEXT NOT NULL, classes TEXT NOT NULL, installed_at VARCHAR(40) NOT NULL);
CREATE TABLE IF NOT EXISTS _gapsync_batches(seq BIGINT PRIMARY KEY, kind VARCHAR(16) NOT NULL, file VARCHAR(255) NOT NULL, size BIGINT NOT NULL, sha256 VARCHAR(64) NOT NULL, statements BIGINT NOT NULL, changes BIGINT NOT NULL, first_id BIGINT NULL, last_id BIGINT NULL, state VARCHAR(16) NOT NULL, attempts INTEGER NOT NULL, reason TEXT NULL, created VARCHAR(40) NOT NULL, updated VARCHAR(40) NOT NULL);
CREATE TABLE IF NOT EXISTS _gapsync_state(name VARCHAR(64) PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS _gapsync_requests(id BIGSERIAL PRIMARY KEY, kind VARCHAR(16) NOT NULL, tbl VARCHAR(255) NOT NULL, requested VARCHAR(40) NOT NULL);
CREATE TABLE IF NOT EXISTS _gapsync_rejected(id BIGSERIAL PRIMARY KEY, change_id BIGINT NULL, tbl VARCHAR(255) NOT NULL, what VARCHAR(16) NOT NULL, reason TEXT NOT NULL, at VARCHAR(40) NOT NULL);

-- width_ddl
ALTER TABLE _gapsync_changes ADD COLUMN k0 TEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN k1 TEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c0 TEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c1 TEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c2 TEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c3 TEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c4 TEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c5 TEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c6 TEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c7 TEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c8 TEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c9 TEXT NULL;

-- trigger_ddl
DROP TRIGGER IF EXISTS "_gapsync_plant_main" ON "plant_main";
DROP FUNCTION IF EXISTS "_gapsync_plant_main_fn"();
CREATE OR REPLACE FUNCTION "_gapsync_plant_main_fn"() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT SET extra_float_digits = 3 AS $gapsync$ BEGIN IF TG_OP = 'INSERT' THEN INSERT INTO _gapsync_changes(tbl, op, layout, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9) VALUES ('plant_main', 'I', 7, (NEW."id")::text, (NEW."name")::text, (NEW."value")::float8::text, (NEW."amount")::text, encode(NEW."raw", 'hex'), CASE WHEN isfinite(NEW."day") AND NEW."day" >= DATE '0001-01-01' THEN to_char(NEW."day", 'YYYY-MM-DD') ELSE (NEW."day")::text END, to_char(NEW."tod", 'HH24:MI:SS.US'), CASE WHEN isfinite(NEW."Read At") AND NEW."Read At" >= TIMESTAMP '0001-01-01' THEN to_char(NEW."Read At", 'YYYY-MM-DD HH24:MI:SS.US') ELSE (NEW."Read At")::text END, CASE WHEN isfinite(NEW."at_utc") AND NEW."at_utc" >= TIMESTAMPTZ '0001-01-01 00:00:00+00' THEN to_char(NEW."at_utc" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') ELSE (NEW."at_utc")::text END, (NEW."flag")::int::text); ELSIF TG_OP = 'UPDATE' THEN INSERT INTO _gapsync_changes(tbl, op, layout, k0, k1, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9) VALUES ('plant_main', 'U', 7, (OLD."id")::text, (OLD."name")::text, (NEW."id")::text, (NEW."name")::text, (NEW."value")::float8::text, (NEW."amount")::text, encode(NEW."raw", 'hex'), CASE WHEN isfinite(NEW."day") AND NEW."day" >= DATE '0001-01-01' THEN to_char(NEW."day", 'YYYY-MM-DD') ELSE (NEW."day")::text END, to_char(NEW."tod", 'HH24:MI:SS.US'), CASE WHEN isfinite(NEW."Read At") AND NEW."Read At" >= TIMESTAMP '0001-01-01' THEN to_char(NEW."Read At", 'YYYY-MM-DD HH24:MI:SS.US') ELSE (NEW."Read At")::text END, CASE WHEN isfinite(NEW."at_utc") AND NEW."at_utc" >= TIMESTAMPTZ '0001-01-01 00:00:00+00' THEN to_char(NEW."at_utc" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') ELSE (NEW."at_utc")::text END, (NEW."flag")::int::text); ELSE INSERT INTO _gapsync_changes(tbl, op, layout, k0, k1) VALUES ('plant_main', 'D', 7, (OLD."id")::text, (OLD."name")::text); END IF; RETURN NULL; END $gapsync$;
CREATE TRIGGER "_gapsync_plant_main" AFTER INSERT OR UPDATE OR DELETE ON "plant_main" FOR EACH ROW EXECUTE FUNCTION "_gapsync_plant_main_fn"();

-- drop_trigger_ddl
DROP TRIGGER IF EXISTS "_gapsync_plant_main" ON "plant_main";
DROP FUNCTION IF EXISTS "_gapsync_plant_main_fn"();

-- purge_ddl
DROP TABLE IF EXISTS _gapsync_changes;
DROP TABLE IF EXISTS _gapsync_layouts;
DROP TABLE IF EXISTS _gapsync_batches;
DROP TABLE IF EXISTS _gapsync_state;
DROP TABLE IF EXISTS _gapsync_requests;
DROP TABLE IF EXISTS _gapsync_rejected;
