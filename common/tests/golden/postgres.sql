-- gapsync golden file: dialect postgres (PostgreSQL), rendered by gapsync_common::dialect.
-- Regenerate: GAPSYNC_BLESS=1 cargo test -p gapsync-common --test golden

-- map_type(declared) -> column type | as a key column
-- "" -> error: column "c" has no declared type: a typeless SQLite column may hold values of any storage class, so no PostgreSQL column type stores them exactly; give it one in the source schema (INTEGER, REAL, TEXT, BLOB, NUMERIC, ...) | error: column "c" has no declared type: a typeless SQLite column may hold values of any storage class, so no PostgreSQL column type stores them exactly; give it one in the source schema (INTEGER, REAL, TEXT, BLOB, NUMERIC, ...)
-- "INTEGER" -> "BIGINT" | "BIGINT"
-- "unsigned big int" -> "BIGINT" | "BIGINT"
-- "VARCHAR(20)" -> "TEXT" | "TEXT"
-- "TEXT" -> "TEXT" | "TEXT"
-- "CLOB" -> "TEXT" | "TEXT"
-- "BLOB" -> "BYTEA" | "BYTEA"
-- "REAL" -> "DOUBLE PRECISION" | "DOUBLE PRECISION"
-- "DOUBLE PRECISION" -> "DOUBLE PRECISION" | "DOUBLE PRECISION"
-- "FLOAT" -> "DOUBLE PRECISION" | "DOUBLE PRECISION"
-- "NUMERIC" -> "NUMERIC" | "NUMERIC"
-- "JSON" -> "NUMERIC" | "NUMERIC"
-- "DECIMAL(10,2)" -> "NUMERIC(10,2)" | "NUMERIC(10,2)"
-- "NUMBER(5)" -> "NUMERIC(5)" | "NUMERIC(5)"
-- "DECIMAL(40,2)" -> "NUMERIC(40,2)" | "NUMERIC(40,2)"
-- "DECIMAL(70,35)" -> "NUMERIC(70,35)" | "NUMERIC(70,35)"
-- "DATE" -> "DATE" | "DATE"
-- "TIME" -> "TIME(6)" | "TIME(6)"
-- "TIME(3)" -> "TIME(3)" | "TIME(3)"
-- "DATETIME" -> "TIMESTAMP(6)" | "TIMESTAMP(6)"
-- "TIMESTAMP(9)" -> error: column "c": declared type "TIMESTAMP(9)" cannot be mapped to PostgreSQL: PostgreSQL keeps at most 6 fractional digits of a second, not 9 | error: column "c": declared type "TIMESTAMP(9)" cannot be mapped to PostgreSQL: PostgreSQL keeps at most 6 fractional digits of a second, not 9
-- "TIMESTAMP WITH TIME ZONE" -> "TIMESTAMP(6) WITH TIME ZONE" | "TIMESTAMP(6) WITH TIME ZONE"
-- "TIMESTAMPTZ(3)" -> "TIMESTAMP(3) WITH TIME ZONE" | "TIMESTAMP(3) WITH TIME ZONE"
-- "BOOLEAN" -> "SMALLINT" | "SMALLINT"
-- "\"quoted\" type" -> "NUMERIC" | "NUMERIC"

-- snapshot and change statements
CREATE TABLE IF NOT EXISTS "plant ""A"" [main]" ("id" BIGINT, "name" TEXT, "value" DOUBLE PRECISION, "raw" BYTEA, "amount" NUMERIC(12,4), "day" DATE, "at" TIMESTAMP(6), "flag" SMALLINT, PRIMARY KEY ("id", "name"));
DELETE FROM "plant ""A"" [main]";
INSERT INTO "plant ""A"" [main]" ("id", "name", "value", "raw", "amount", "day", "at", "flag") VALUES (1, '1号主变', 230.5, '\xdead', 1234.5600, DATE '2026-01-02', TIMESTAMP '2026-01-02 03:04:05.250', '1');
UPDATE "plant ""A"" [main]" SET "id" = 2, "name" = '2号主变', "value" = 230.5, "raw" = '\xdead', "amount" = 1234.5600, "day" = DATE '2026-01-02', "at" = TIMESTAMP '2026-01-02 03:04:05.250', "flag" = '1' WHERE "id" = 1 AND "name" = '1号主变';
UPDATE "plant ""A"" [main]" SET "id" = 3, "name" = 'x', "value" = 230.5, "raw" = '\xdead', "amount" = 1234.5600, "day" = DATE '2026-01-02', "at" = TIMESTAMP '2026-01-02 03:04:05.250', "flag" = '1' WHERE "id" = 2 AND "name" IS NULL;
DELETE FROM "plant ""A"" [main]" WHERE "id" = 3 AND "name" = 'x';
-- error: PostgreSQL: identifier "a\nb" holds a line break or NUL, which cannot be written on one line

-- values: INSERT, UPDATE changing the key, DELETE by the value
-- null: NULL
INSERT INTO "t" ("id", "v") VALUES (1, NULL);
UPDATE "t" SET "id" = 1001, "v" = NULL WHERE "id" = 1;
DELETE FROM "t" WHERE "v" IS NULL;
-- integer 0: 0
INSERT INTO "t" ("id", "v") VALUES (2, 0);
UPDATE "t" SET "id" = 1002, "v" = 0 WHERE "id" = 2;
DELETE FROM "t" WHERE "v" = 0;
-- integer -1: -1
INSERT INTO "t" ("id", "v") VALUES (3, -1);
UPDATE "t" SET "id" = 1003, "v" = -1 WHERE "id" = 3;
DELETE FROM "t" WHERE "v" = -1;
-- i64 min: -9223372036854775808
INSERT INTO "t" ("id", "v") VALUES (4, -9223372036854775808);
UPDATE "t" SET "id" = 1004, "v" = -9223372036854775808 WHERE "id" = 4;
DELETE FROM "t" WHERE "v" = -9223372036854775808;
-- i64 max: 9223372036854775807
INSERT INTO "t" ("id", "v") VALUES (5, 9223372036854775807);
UPDATE "t" SET "id" = 1005, "v" = 9223372036854775807 WHERE "id" = 5;
DELETE FROM "t" WHERE "v" = 9223372036854775807;
-- real 0.1: 0.1
INSERT INTO "t" ("id", "v") VALUES (6, 0.1);
UPDATE "t" SET "id" = 1006, "v" = 0.1 WHERE "id" = 6;
DELETE FROM "t" WHERE "v" = 0.1;
-- real -2.5: -2.5
INSERT INTO "t" ("id", "v") VALUES (7, -2.5);
UPDATE "t" SET "id" = 1007, "v" = -2.5 WHERE "id" = 7;
DELETE FROM "t" WHERE "v" = -2.5;
-- real 1.0: 1.0
INSERT INTO "t" ("id", "v") VALUES (8, 1.0);
UPDATE "t" SET "id" = 1008, "v" = 1.0 WHERE "id" = 8;
DELETE FROM "t" WHERE "v" = 1.0;
-- real 0.0: 0.0
INSERT INTO "t" ("id", "v") VALUES (9, 0.0);
UPDATE "t" SET "id" = 1009, "v" = 0.0 WHERE "id" = 9;
DELETE FROM "t" WHERE "v" = 0.0;
-- real -0.0: -0.0
INSERT INTO "t" ("id", "v") VALUES (10, '-0');
UPDATE "t" SET "id" = 1010, "v" = '-0' WHERE "id" = 10;
DELETE FROM "t" WHERE "v" = '-0';
-- real 1e-300: 1e-300
INSERT INTO "t" ("id", "v") VALUES (11, 1e-300);
UPDATE "t" SET "id" = 1011, "v" = 1e-300 WHERE "id" = 11;
DELETE FROM "t" WHERE "v" = 1e-300;
-- real min subnormal: 5e-324
INSERT INTO "t" ("id", "v") VALUES (12, 5e-324);
UPDATE "t" SET "id" = 1012, "v" = 5e-324 WHERE "id" = 12;
DELETE FROM "t" WHERE "v" = 5e-324;
-- real f64 max: 1.7976931348623157e308
INSERT INTO "t" ("id", "v") VALUES (13, 1.7976931348623157e308);
UPDATE "t" SET "id" = 1013, "v" = 1.7976931348623157e308 WHERE "id" = 13;
DELETE FROM "t" WHERE "v" = 1.7976931348623157e308;
-- real f64 -max: -1.7976931348623157e308
INSERT INTO "t" ("id", "v") VALUES (14, -1.7976931348623157e308);
UPDATE "t" SET "id" = 1014, "v" = -1.7976931348623157e308 WHERE "id" = 14;
DELETE FROM "t" WHERE "v" = -1.7976931348623157e308;
-- real 1e16: 1e16
INSERT INTO "t" ("id", "v") VALUES (15, 1e16);
UPDATE "t" SET "id" = 1015, "v" = 1e16 WHERE "id" = 15;
DELETE FROM "t" WHERE "v" = 1e16;
-- real 123456789.12345679: 123456789.12345679
INSERT INTO "t" ("id", "v") VALUES (16, 123456789.12345679);
UPDATE "t" SET "id" = 1016, "v" = 123456789.12345679 WHERE "id" = 16;
DELETE FROM "t" WHERE "v" = 123456789.12345679;
-- real +inf: inf
INSERT INTO "t" ("id", "v") VALUES (17, 'Infinity');
UPDATE "t" SET "id" = 1017, "v" = 'Infinity' WHERE "id" = 17;
DELETE FROM "t" WHERE "v" = 'Infinity';
-- real -inf: -inf
INSERT INTO "t" ("id", "v") VALUES (18, '-Infinity');
UPDATE "t" SET "id" = 1018, "v" = '-Infinity' WHERE "id" = 18;
DELETE FROM "t" WHERE "v" = '-Infinity';
-- real NaN: NaN
INSERT INTO "t" ("id", "v") VALUES (19, 'NaN');
UPDATE "t" SET "id" = 1019, "v" = 'NaN' WHERE "id" = 19;
DELETE FROM "t" WHERE "v" = 'NaN';
-- empty text: ""
INSERT INTO "t" ("id", "v") VALUES (20, '');
UPDATE "t" SET "id" = 1020, "v" = '' WHERE "id" = 20;
DELETE FROM "t" WHERE "v" = '';
-- plain text: "plain"
INSERT INTO "t" ("id", "v") VALUES (21, 'plain');
UPDATE "t" SET "id" = 1021, "v" = 'plain' WHERE "id" = 21;
DELETE FROM "t" WHERE "v" = 'plain';
-- single quote: "it's"
INSERT INTO "t" ("id", "v") VALUES (22, 'it''s');
UPDATE "t" SET "id" = 1022, "v" = 'it''s' WHERE "id" = 22;
DELETE FROM "t" WHERE "v" = 'it''s';
-- double quotes: "\"double\" quotes"
INSERT INTO "t" ("id", "v") VALUES (23, '"double" quotes');
UPDATE "t" SET "id" = 1023, "v" = '"double" quotes' WHERE "id" = 23;
DELETE FROM "t" WHERE "v" = '"double" quotes';
-- backslashes: "back\\slash \\\\ end\\"
INSERT INTO "t" ("id", "v") VALUES (24, E'back\\slash \\\\ end\\');
UPDATE "t" SET "id" = 1024, "v" = E'back\\slash \\\\ end\\' WHERE "id" = 24;
DELETE FROM "t" WHERE "v" = E'back\\slash \\\\ end\\';
-- hostile: "x\\'); DROP TABLE t; --"
INSERT INTO "t" ("id", "v") VALUES (25, E'x\\''); DROP TABLE t; --');
UPDATE "t" SET "id" = 1025, "v" = E'x\\''); DROP TABLE t; --' WHERE "id" = 25;
DELETE FROM "t" WHERE "v" = E'x\\''); DROP TABLE t; --';
-- LF: "line1\nline2"
INSERT INTO "t" ("id", "v") VALUES (26, E'line1\nline2');
UPDATE "t" SET "id" = 1026, "v" = E'line1\nline2' WHERE "id" = 26;
DELETE FROM "t" WHERE "v" = E'line1\nline2';
-- CR and CRLF: "cr\rcrlf\r\n"
INSERT INTO "t" ("id", "v") VALUES (27, E'cr\rcrlf\r\n');
UPDATE "t" SET "id" = 1027, "v" = E'cr\rcrlf\r\n' WHERE "id" = 27;
DELETE FROM "t" WHERE "v" = E'cr\rcrlf\r\n';
-- shell variables: "tab\t$(var) &name"
INSERT INTO "t" ("id", "v") VALUES (28, 'tab	$(var) &name');
UPDATE "t" SET "id" = 1028, "v" = 'tab	$(var) &name' WHERE "id" = 28;
DELETE FROM "t" WHERE "v" = 'tab	$(var) &name';
-- Chinese: "1号主变 高压侧"
INSERT INTO "t" ("id", "v") VALUES (29, '1号主变 高压侧');
UPDATE "t" SET "id" = 1029, "v" = '1号主变 高压侧' WHERE "id" = 29;
DELETE FROM "t" WHERE "v" = '1号主变 高压侧';
-- emoji: "emoji 🚀👍🏽"
INSERT INTO "t" ("id", "v") VALUES (30, 'emoji 🚀👍🏽');
UPDATE "t" SET "id" = 1030, "v" = 'emoji 🚀👍🏽' WHERE "id" = 30;
DELETE FROM "t" WHERE "v" = 'emoji 🚀👍🏽';
-- NUL: "NUL\0inside"
-- error: PostgreSQL cannot store this text value: PostgreSQL text cannot contain NUL (U+0000)
-- quote and LF: "it's\n\\"
INSERT INTO "t" ("id", "v") VALUES (32, E'it''s\n\\');
UPDATE "t" SET "id" = 1032, "v" = E'it''s\n\\' WHERE "id" = 32;
DELETE FROM "t" WHERE "v" = E'it''s\n\\';
-- GBK bytes (not UTF-8): text x'c4e3bac3'
-- error: PostgreSQL cannot store this text value: PostgreSQL text is UTF-8 only, and these bytes are not valid UTF-8
-- empty blob: x''
INSERT INTO "t" ("id", "v") VALUES (34, '\x');
UPDATE "t" SET "id" = 1034, "v" = '\x' WHERE "id" = 34;
DELETE FROM "t" WHERE "v" = '\x';
-- blob like SQL: x'27293b202d2d0a000d'
INSERT INTO "t" ("id", "v") VALUES (35, '\x27293b202d2d0a000d');
UPDATE "t" SET "id" = 1035, "v" = '\x27293b202d2d0a000d' WHERE "id" = 35;
DELETE FROM "t" WHERE "v" = '\x27293b202d2d0a000d';
-- all 256 bytes: x'000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff'
INSERT INTO "t" ("id", "v") VALUES (36, '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff');
UPDATE "t" SET "id" = 1036, "v" = '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff' WHERE "id" = 36;
DELETE FROM "t" WHERE "v" = '\x000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff';
-- decimal 0: decimal "0"
INSERT INTO "t" ("id", "v") VALUES (37, 0);
UPDATE "t" SET "id" = 1037, "v" = 0 WHERE "id" = 37;
DELETE FROM "t" WHERE "v" = 0;
-- decimal 1.10: decimal "1.10"
INSERT INTO "t" ("id", "v") VALUES (38, 1.10);
UPDATE "t" SET "id" = 1038, "v" = 1.10 WHERE "id" = 38;
DELETE FROM "t" WHERE "v" = 1.10;
-- decimal -0.5: decimal "-0.5"
INSERT INTO "t" ("id", "v") VALUES (39, -0.5);
UPDATE "t" SET "id" = 1039, "v" = -0.5 WHERE "id" = 39;
DELETE FROM "t" WHERE "v" = -0.5;
-- decimal, 38 digits: decimal "-12345678901234567890.123456789012345678"
INSERT INTO "t" ("id", "v") VALUES (40, -12345678901234567890.123456789012345678);
UPDATE "t" SET "id" = 1040, "v" = -12345678901234567890.123456789012345678 WHERE "id" = 40;
DELETE FROM "t" WHERE "v" = -12345678901234567890.123456789012345678;
-- decimal, 39 digits: decimal "123456789012345678901234567890.123456789"
INSERT INTO "t" ("id", "v") VALUES (41, 123456789012345678901234567890.123456789);
UPDATE "t" SET "id" = 1041, "v" = 123456789012345678901234567890.123456789 WHERE "id" = 41;
DELETE FROM "t" WHERE "v" = 123456789012345678901234567890.123456789;
-- decimal, 31 decimals: decimal "0.1234567890123456789012345678901"
INSERT INTO "t" ("id", "v") VALUES (42, 0.1234567890123456789012345678901);
UPDATE "t" SET "id" = 1042, "v" = 0.1234567890123456789012345678901 WHERE "id" = 42;
DELETE FROM "t" WHERE "v" = 0.1234567890123456789012345678901;
-- decimal, 70 digits: decimal "1111111111111111111111111111111111111111111111111111111111111111111111"
INSERT INTO "t" ("id", "v") VALUES (43, 1111111111111111111111111111111111111111111111111111111111111111111111);
UPDATE "t" SET "id" = 1043, "v" = 1111111111111111111111111111111111111111111111111111111111111111111111 WHERE "id" = 43;
DELETE FROM "t" WHERE "v" = 1111111111111111111111111111111111111111111111111111111111111111111111;
-- decimal, malformed: decimal "1e5"
-- error: invalid decimal value "1e5": expected an optional '-', digits, and optionally '.' and more digits
-- date: date "2026-01-02"
INSERT INTO "t" ("id", "v") VALUES (45, DATE '2026-01-02');
UPDATE "t" SET "id" = 1045, "v" = DATE '2026-01-02' WHERE "id" = 45;
DELETE FROM "t" WHERE "v" = DATE '2026-01-02';
-- date, year 1: date "0001-01-01"
INSERT INTO "t" ("id", "v") VALUES (46, DATE '0001-01-01');
UPDATE "t" SET "id" = 1046, "v" = DATE '0001-01-01' WHERE "id" = 46;
DELETE FROM "t" WHERE "v" = DATE '0001-01-01';
-- date, malformed: date "2026-02-30"
-- error: invalid date value "2026-02-30": not a calendar day between 0001-01-01 and 9999-12-31
-- time: time "00:00:00"
INSERT INTO "t" ("id", "v") VALUES (48, TIME '00:00:00');
UPDATE "t" SET "id" = 1048, "v" = TIME '00:00:00' WHERE "id" = 48;
DELETE FROM "t" WHERE "v" = TIME '00:00:00';
-- time, micros: time "23:59:59.123456"
INSERT INTO "t" ("id", "v") VALUES (49, TIME '23:59:59.123456');
UPDATE "t" SET "id" = 1049, "v" = TIME '23:59:59.123456' WHERE "id" = 49;
DELETE FROM "t" WHERE "v" = TIME '23:59:59.123456';
-- time, nanos: time "12:34:56.123456789"
-- error: PostgreSQL cannot store this time value: PostgreSQL keeps at most 6 fractional digits of a second, and .123456789 would be rounded
-- time, 7 digits and zeros: time "12:34:56.123456700"
-- error: PostgreSQL cannot store this time value: PostgreSQL keeps at most 6 fractional digits of a second, and .123456700 would be rounded
-- timestamp: timestamp "2026-01-02 03:04:05"
INSERT INTO "t" ("id", "v") VALUES (52, TIMESTAMP '2026-01-02 03:04:05');
UPDATE "t" SET "id" = 1052, "v" = TIMESTAMP '2026-01-02 03:04:05' WHERE "id" = 52;
DELETE FROM "t" WHERE "v" = TIMESTAMP '2026-01-02 03:04:05';
-- timestamp, .5: timestamp "2026-01-02 03:04:05.5"
INSERT INTO "t" ("id", "v") VALUES (53, TIMESTAMP '2026-01-02 03:04:05.5');
UPDATE "t" SET "id" = 1053, "v" = TIMESTAMP '2026-01-02 03:04:05.5' WHERE "id" = 53;
DELETE FROM "t" WHERE "v" = TIMESTAMP '2026-01-02 03:04:05.5';
-- timestamp, nanos: timestamp "1999-12-31 23:59:59.999999999"
-- error: PostgreSQL cannot store this timestamp value: PostgreSQL keeps at most 6 fractional digits of a second, and .999999999 would be rounded
-- timestamptz: timestamptz "2026-01-02 03:04:05+00:00"
INSERT INTO "t" ("id", "v") VALUES (55, TIMESTAMPTZ '2026-01-02 03:04:05+00:00');
UPDATE "t" SET "id" = 1055, "v" = TIMESTAMPTZ '2026-01-02 03:04:05+00:00' WHERE "id" = 55;
DELETE FROM "t" WHERE "v" = TIMESTAMPTZ '2026-01-02 03:04:05+00:00';
-- timestamptz, micros: timestamptz "2026-01-02 03:04:05.123456+00:00"
INSERT INTO "t" ("id", "v") VALUES (56, TIMESTAMPTZ '2026-01-02 03:04:05.123456+00:00');
UPDATE "t" SET "id" = 1056, "v" = TIMESTAMPTZ '2026-01-02 03:04:05.123456+00:00' WHERE "id" = 56;
DELETE FROM "t" WHERE "v" = TIMESTAMPTZ '2026-01-02 03:04:05.123456+00:00';
-- timestamptz, not UTC: timestamptz "2026-01-02 11:04:05+08:00"
-- error: invalid timestamptz value "2026-01-02 11:04:05+08:00": expected YYYY-MM-DD HH:MM:SS[.fraction]+00:00 (normalised to UTC)
-- boolean true: true
INSERT INTO "t" ("id", "v") VALUES (58, '1');
UPDATE "t" SET "id" = 1058, "v" = '1' WHERE "id" = 58;
DELETE FROM "t" WHERE "v" = '1';
-- boolean false: false
INSERT INTO "t" ("id", "v") VALUES (59, '0');
UPDATE "t" SET "id" = 1059, "v" = '0' WHERE "id" = 59;
DELETE FROM "t" WHERE "v" = '0';
