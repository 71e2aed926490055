-- gapsync capture golden file: dialect mysql, rendered by gapsync_sender::capture::ddl.
-- Regenerate: GAPSYNC_BLESS=1 cargo test -p gapsync-sender --test capture_golden
-- Table plant_main -> mis_plant, key (id, name), layout 7; columns: id int, name text, value float, amount decimal, raw binary, day date, tod time, Read At timestamp, at_utc timestamptz, flag bool

-- base_ddl
CREATE TABLE IF NOT EXISTS _gapsync_changes(id BIGINT AUTO_INCREMENT PRIMARY KEY, tbl VARCHAR(255) NOT NULL, op CHAR(1) NOT NULL, layout INTEGER NOT NULL, at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), txid BIGINT NULL, batch BIGINT NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE INDEX IF NOT EXISTS _gapsync_changes_batch ON _gapsync_changes(batch);
CREATE TABLE IF NOT EXISTS _gapsync_layouts(layout INTEGER PRIMARY KEY, tbl VARCHAR(255) NOT NULL, cols TEXT NOT NULL, keycols TEXT NOT NULL, classes TEXT NOT NULL, installed_at VARCHAR(40) NOT NULL);
CREATE TABLE IF NOT EXISTS _gapsync_batches(seq BIGINT PRIMARY KEY, kind VARCHAR(16) NOT NULL, file VARCHAR(255) NOT NULL, size BIGINT NOT NULL, sha256 VARCHAR(64) NOT NULL, statements BIGINT NOT NULL, changes BIGINT NOT NULL, first_id BIGINT NULL, last_id BIGINT NULL, state VARCHAR(16) NOT NULL, attempts INTEGER NOT NULL, reason TEXT NULL, created VARCHAR(40) NOT NULL, updated VARCHAR(40) NOT NULL);
CREATE TABLE IF NOT EXISTS _gapsync_state(name VARCHAR(64) PRIMARY KEY, value BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS _gapsync_requests(id BIGINT AUTO_INCREMENT PRIMARY KEY, kind VARCHAR(16) NOT NULL, tbl VARCHAR(255) NOT NULL, requested VARCHAR(40) NOT NULL);
CREATE TABLE IF NOT EXISTS _gapsync_rejected(id BIGINT AUTO_INCREMENT PRIMARY KEY, change_id BIGINT NULL, tbl VARCHAR(255) NOT NULL, what VARCHAR(16) NOT NULL, reason TEXT NOT NULL, at VARCHAR(40) NOT NULL);

-- width_ddl
ALTER TABLE _gapsync_changes ADD COLUMN k0 LONGTEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN k1 LONGTEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c0 LONGTEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c1 LONGTEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c2 LONGTEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c3 LONGTEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c4 LONGTEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c5 LONGTEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c6 LONGTEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c7 LONGTEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c8 LONGTEXT NULL;
ALTER TABLE _gapsync_changes ADD COLUMN c9 LONGTEXT NULL;

-- trigger_ddl
DROP TRIGGER IF EXISTS `_gapsync_plant_main_ins`;
DROP TRIGGER IF EXISTS `_gapsync_plant_main_upd`;
DROP TRIGGER IF EXISTS `_gapsync_plant_main_del`;
CREATE TRIGGER `_gapsync_plant_main_ins` AFTER INSERT ON `plant_main` FOR EACH ROW INSERT INTO _gapsync_changes(tbl, op, layout, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9) VALUES ('plant_main', 'I', 7, CAST(NEW.`id` AS CHAR), NEW.`name`, CAST(CAST(NEW.`value` AS DOUBLE) AS CHAR), CAST(NEW.`amount` AS CHAR), HEX(NEW.`raw`), DATE_FORMAT(NEW.`day`, '%Y-%m-%d'), TIME_FORMAT(NEW.`tod`, '%H:%i:%s.%f'), DATE_FORMAT(NEW.`Read At`, '%Y-%m-%d %H:%i:%s.%f'), CAST(UNIX_TIMESTAMP(NEW.`at_utc`) AS CHAR), CAST(NEW.`flag` AS CHAR));
CREATE TRIGGER `_gapsync_plant_main_upd` AFTER UPDATE ON `plant_main` FOR EACH ROW INSERT INTO _gapsync_changes(tbl, op, layout, k0, k1, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9) VALUES ('plant_main', 'U', 7, CAST(OLD.`id` AS CHAR), OLD.`name`, CAST(NEW.`id` AS CHAR), NEW.`name`, CAST(CAST(NEW.`value` AS DOUBLE) AS CHAR), CAST(NEW.`amount` AS CHAR), HEX(NEW.`raw`), DATE_FORMAT(NEW.`day`, '%Y-%m-%d'), TIME_FORMAT(NEW.`tod`, '%H:%i:%s.%f'), DATE_FORMAT(NEW.`Read At`, '%Y-%m-%d %H:%i:%s.%f'), CAST(UNIX_TIMESTAMP(NEW.`at_utc`) AS CHAR), CAST(NEW.`flag` AS CHAR));
CREATE TRIGGER `_gapsync_plant_main_del` AFTER DELETE ON `plant_main` FOR EACH ROW INSERT INTO _gapsync_changes(tbl, op, layout, k0, k1) VALUES ('plant_main', 'D', 7, CAST(OLD.`id` AS CHAR), OLD.`name`);

-- drop_trigger_ddl
DROP TRIGGER IF EXISTS `_gapsync_plant_main_ins`;
DROP TRIGGER IF EXISTS `_gapsync_plant_main_upd`;
DROP TRIGGER IF EXISTS `_gapsync_plant_main_del`;

-- purge_ddl
DROP TABLE IF EXISTS _gapsync_changes;
DROP TABLE IF EXISTS _gapsync_layouts;
DROP TABLE IF EXISTS _gapsync_batches;
DROP TABLE IF EXISTS _gapsync_state;
DROP TABLE IF EXISTS _gapsync_requests;
DROP TABLE IF EXISTS _gapsync_rejected;
