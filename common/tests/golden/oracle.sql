-- gapsync golden file: dialect oracle (Oracle), rendered by gapsync_common::dialect.
-- Regenerate: GAPSYNC_BLESS=1 cargo test -p gapsync-common --test golden

-- map_type(declared) -> column type | as a key column
-- "" -> error: column "c" has no declared type: a typeless SQLite column may hold values of any storage class, so no Oracle column type stores them exactly; give it one in the source schema (INTEGER, REAL, TEXT, BLOB, NUMERIC, ...) | error: column "c" has no declared type: a typeless SQLite column may hold values of any storage class, so no Oracle column type stores them exactly; give it one in the source schema (INTEGER, REAL, TEXT, BLOB, NUMERIC, ...)
-- "INTEGER" -> "NUMBER(19)" | "NUMBER(19)"
-- "unsigned big int" -> "NUMBER(19)" | "NUMBER(19)"
-- "VARCHAR(20)" -> "NCLOB" | "NVARCHAR2(1000)"
-- "TEXT" -> "NCLOB" | "NVARCHAR2(1000)"
-- "CLOB" -> "NCLOB" | "NVARCHAR2(1000)"
-- "BLOB" -> "BLOB" | "RAW(2000)"
-- "REAL" -> "BINARY_DOUBLE" | "BINARY_DOUBLE"
-- "DOUBLE PRECISION" -> "BINARY_DOUBLE" | "BINARY_DOUBLE"
-- "FLOAT" -> "BINARY_DOUBLE" | "BINARY_DOUBLE"
-- "NUMERIC" -> "NUMBER" | "NUMBER"
-- "JSON" -> "NUMBER" | "NUMBER"
-- "DECIMAL(10,2)" -> "NUMBER(10,2)" | "NUMBER(10,2)"
-- "NUMBER(5)" -> "NUMBER(5)" | "NUMBER(5)"
-- "DECIMAL(40,2)" -> error: column "c": declared type "DECIMAL(40,2)" cannot be mapped to Oracle: Oracle decimals hold at most 38 digits | error: column "c": declared type "DECIMAL(40,2)" cannot be mapped to Oracle: Oracle decimals hold at most 38 digits
-- "DECIMAL(70,35)" -> error: column "c": declared type "DECIMAL(70,35)" cannot be mapped to Oracle: Oracle decimals hold at most 38 digits | error: column "c": declared type "DECIMAL(70,35)" cannot be mapped to Oracle: Oracle decimals hold at most 38 digits
-- "DATE" -> "DATE" | "DATE"
-- "TIME" -> "INTERVAL DAY(0) TO SECOND(9)" | "INTERVAL DAY(0) TO SECOND(9)"
-- "TIME(3)" -> "INTERVAL DAY(0) TO SECOND(3)" | "INTERVAL DAY(0) TO SECOND(3)"
-- "DATETIME" -> "TIMESTAMP(9)" | "TIMESTAMP(9)"
-- "TIMESTAMP(9)" -> "TIMESTAMP(9)" | "TIMESTAMP(9)"
-- "TIMESTAMP WITH TIME ZONE" -> "TIMESTAMP(9) WITH TIME ZONE" | "TIMESTAMP(9) WITH TIME ZONE"
-- "TIMESTAMPTZ(3)" -> "TIMESTAMP(3) WITH TIME ZONE" | "TIMESTAMP(3) WITH TIME ZONE"
-- "BOOLEAN" -> "NUMBER(1)" | "NUMBER(1)"
-- "\"quoted\" type" -> "NUMBER" | "NUMBER"

-- snapshot and change statements
CREATE TABLE "plant ""A"" [main]" ("id" NUMBER(19), "name" NVARCHAR2(1000), "value" BINARY_DOUBLE, "raw" BLOB, "amount" NUMBER(12,4), "day" DATE, "at" TIMESTAMP(9), "flag" NUMBER(1), PRIMARY KEY ("id", "name"));
DELETE FROM "plant ""A"" [main]";
INSERT INTO "plant ""A"" [main]" ("id", "name", "value", "raw", "amount", "day", "at", "flag") VALUES (1, '1号主变', 230.5d, HEXTORAW('DEAD'), 1234.5600, DATE '2026-01-02', TIMESTAMP '2026-01-02 03:04:05.250', 1);
UPDATE "plant ""A"" [main]" SET "id" = 2, "name" = '2号主变', "value" = 230.5d, "raw" = HEXTORAW('DEAD'), "amount" = 1234.5600, "day" = DATE '2026-01-02', "at" = TIMESTAMP '2026-01-02 03:04:05.250', "flag" = 1 WHERE "id" = 1 AND "name" = '1号主变';
UPDATE "plant ""A"" [main]" SET "id" = 3, "name" = 'x', "value" = 230.5d, "raw" = HEXTORAW('DEAD'), "amount" = 1234.5600, "day" = DATE '2026-01-02', "at" = TIMESTAMP '2026-01-02 03:04:05.250', "flag" = 1 WHERE "id" = 2 AND "name" IS NULL;
DELETE FROM "plant ""A"" [main]" WHERE "id" = 3 AND "name" = 'x';
-- error: Oracle: identifier "a\nb" holds a line break or NUL, which cannot be written on one line

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
INSERT INTO "t" ("id", "v") VALUES (6, 0.1d);
UPDATE "t" SET "id" = 1006, "v" = 0.1d WHERE "id" = 6;
DELETE FROM "t" WHERE "v" = 0.1d;
-- real -2.5: -2.5
INSERT INTO "t" ("id", "v") VALUES (7, -2.5d);
UPDATE "t" SET "id" = 1007, "v" = -2.5d WHERE "id" = 7;
DELETE FROM "t" WHERE "v" = -2.5d;
-- real 1.0: 1.0
INSERT INTO "t" ("id", "v") VALUES (8, 1.0d);
UPDATE "t" SET "id" = 1008, "v" = 1.0d WHERE "id" = 8;
DELETE FROM "t" WHERE "v" = 1.0d;
-- real 0.0: 0.0
INSERT INTO "t" ("id", "v") VALUES (9, 0.0d);
UPDATE "t" SET "id" = 1009, "v" = 0.0d WHERE "id" = 9;
DELETE FROM "t" WHERE "v" = 0.0d;
-- real -0.0: -0.0
-- error: Oracle cannot store this real value: Oracle's BINARY_DOUBLE converts -0.0 to 0 (the sign of zero is lost)
-- real 1e-300: 1e-300
INSERT INTO "t" ("id", "v") VALUES (11, 1e-300d);
UPDATE "t" SET "id" = 1011, "v" = 1e-300d WHERE "id" = 11;
DELETE FROM "t" WHERE "v" = 1e-300d;
-- real min subnormal: 5e-324
INSERT INTO "t" ("id", "v") VALUES (12, 5e-324d);
UPDATE "t" SET "id" = 1012, "v" = 5e-324d WHERE "id" = 12;
DELETE FROM "t" WHERE "v" = 5e-324d;
-- real f64 max: 1.7976931348623157e308
INSERT INTO "t" ("id", "v") VALUES (13, 1.7976931348623157e308d);
UPDATE "t" SET "id" = 1013, "v" = 1.7976931348623157e308d WHERE "id" = 13;
DELETE FROM "t" WHERE "v" = 1.7976931348623157e308d;
-- real f64 -max: -1.7976931348623157e308
INSERT INTO "t" ("id", "v") VALUES (14, -1.7976931348623157e308d);
UPDATE "t" SET "id" = 1014, "v" = -1.7976931348623157e308d WHERE "id" = 14;
DELETE FROM "t" WHERE "v" = -1.7976931348623157e308d;
-- real 1e16: 1e16
INSERT INTO "t" ("id", "v") VALUES (15, 1e16d);
UPDATE "t" SET "id" = 1015, "v" = 1e16d WHERE "id" = 15;
DELETE FROM "t" WHERE "v" = 1e16d;
-- real 123456789.12345679: 123456789.12345679
INSERT INTO "t" ("id", "v") VALUES (16, 123456789.12345679d);
UPDATE "t" SET "id" = 1016, "v" = 123456789.12345679d WHERE "id" = 16;
DELETE FROM "t" WHERE "v" = 123456789.12345679d;
-- real +inf: inf
INSERT INTO "t" ("id", "v") VALUES (17, BINARY_DOUBLE_INFINITY);
UPDATE "t" SET "id" = 1017, "v" = BINARY_DOUBLE_INFINITY WHERE "id" = 17;
DELETE FROM "t" WHERE "v" = BINARY_DOUBLE_INFINITY;
-- real -inf: -inf
INSERT INTO "t" ("id", "v") VALUES (18, -BINARY_DOUBLE_INFINITY);
UPDATE "t" SET "id" = 1018, "v" = -BINARY_DOUBLE_INFINITY WHERE "id" = 18;
DELETE FROM "t" WHERE "v" = -BINARY_DOUBLE_INFINITY;
-- real NaN: NaN
INSERT INTO "t" ("id", "v") VALUES (19, BINARY_DOUBLE_NAN);
UPDATE "t" SET "id" = 1019, "v" = BINARY_DOUBLE_NAN WHERE "id" = 19;
DELETE FROM "t" WHERE "v" = BINARY_DOUBLE_NAN;
-- empty text: ""
-- error: Oracle cannot store this text value: Oracle and DM have no empty string: '' would become NULL
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
INSERT INTO "t" ("id", "v") VALUES (24, 'back\slash \\ end\');
UPDATE "t" SET "id" = 1024, "v" = 'back\slash \\ end\' WHERE "id" = 24;
DELETE FROM "t" WHERE "v" = 'back\slash \\ end\';
-- hostile: "x\\'); DROP TABLE t; --"
INSERT INTO "t" ("id", "v") VALUES (25, 'x\''); DROP TABLE t; --');
UPDATE "t" SET "id" = 1025, "v" = 'x\''); DROP TABLE t; --' WHERE "id" = 25;
DELETE FROM "t" WHERE "v" = 'x\''); DROP TABLE t; --';
-- LF: "line1\nline2"
INSERT INTO "t" ("id", "v") VALUES (26, UNISTR('line1\000Aline2'));
UPDATE "t" SET "id" = 1026, "v" = UNISTR('line1\000Aline2') WHERE "id" = 26;
DELETE FROM "t" WHERE "v" = UNISTR('line1\000Aline2');
-- CR and CRLF: "cr\rcrlf\r\n"
INSERT INTO "t" ("id", "v") VALUES (27, UNISTR('cr\000Dcrlf\000D\000A'));
UPDATE "t" SET "id" = 1027, "v" = UNISTR('cr\000Dcrlf\000D\000A') WHERE "id" = 27;
DELETE FROM "t" WHERE "v" = UNISTR('cr\000Dcrlf\000D\000A');
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
INSERT INTO "t" ("id", "v") VALUES (31, UNISTR('NUL\0000inside'));
UPDATE "t" SET "id" = 1031, "v" = UNISTR('NUL\0000inside') WHERE "id" = 31;
DELETE FROM "t" WHERE "v" = UNISTR('NUL\0000inside');
-- quote and LF: "it's\n\\"
INSERT INTO "t" ("id", "v") VALUES (32, UNISTR('it''s\000A\\'));
UPDATE "t" SET "id" = 1032, "v" = UNISTR('it''s\000A\\') WHERE "id" = 32;
DELETE FROM "t" WHERE "v" = UNISTR('it''s\000A\\');
-- GBK bytes (not UTF-8): text x'c4e3bac3'
-- error: Oracle cannot store this text value: its text types hold Unicode, and these bytes are not valid UTF-8
-- empty blob: x''
INSERT INTO "t" ("id", "v") VALUES (34, EMPTY_BLOB());
UPDATE "t" SET "id" = 1034, "v" = EMPTY_BLOB() WHERE "id" = 34;
DELETE FROM "t" WHERE "v" = EMPTY_BLOB();
-- blob like SQL: x'27293b202d2d0a000d'
INSERT INTO "t" ("id", "v") VALUES (35, HEXTORAW('27293B202D2D0A000D'));
UPDATE "t" SET "id" = 1035, "v" = HEXTORAW('27293B202D2D0A000D') WHERE "id" = 35;
DELETE FROM "t" WHERE "v" = HEXTORAW('27293B202D2D0A000D');
-- all 256 bytes: x'000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff'
INSERT INTO "t" ("id", "v") VALUES (36, HEXTORAW('000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F202122232425262728292A2B2C2D2E2F303132333435363738393A3B3C3D3E3F404142434445464748494A4B4C4D4E4F505152535455565758595A5B5C5D5E5F606162636465666768696A6B6C6D6E6F707172737475767778797A7B7C7D7E7F808182838485868788898A8B8C8D8E8F909192939495969798999A9B9C9D9E9FA0A1A2A3A4A5A6A7A8A9AAABACADAEAFB0B1B2B3B4B5B6B7B8B9BABBBCBDBEBFC0C1C2C3C4C5C6C7C8C9CACBCCCDCECFD0D1D2D3D4D5D6D7D8D9DADBDCDDDEDFE0E1E2E3E4E5E6E7E8E9EAEBECEDEEEFF0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF'));
UPDATE "t" SET "id" = 1036, "v" = HEXTORAW('000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F202122232425262728292A2B2C2D2E2F303132333435363738393A3B3C3D3E3F404142434445464748494A4B4C4D4E4F505152535455565758595A5B5C5D5E5F606162636465666768696A6B6C6D6E6F707172737475767778797A7B7C7D7E7F808182838485868788898A8B8C8D8E8F909192939495969798999A9B9C9D9E9FA0A1A2A3A4A5A6A7A8A9AAABACADAEAFB0B1B2B3B4B5B6B7B8B9BABBBCBDBEBFC0C1C2C3C4C5C6C7C8C9CACBCCCDCECFD0D1D2D3D4D5D6D7D8D9DADBDCDDDEDFE0E1E2E3E4E5E6E7E8E9EAEBECEDEEEFF0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF') WHERE "id" = 36;
DELETE FROM "t" WHERE "v" = HEXTORAW('000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F202122232425262728292A2B2C2D2E2F303132333435363738393A3B3C3D3E3F404142434445464748494A4B4C4D4E4F505152535455565758595A5B5C5D5E5F606162636465666768696A6B6C6D6E6F707172737475767778797A7B7C7D7E7F808182838485868788898A8B8C8D8E8F909192939495969798999A9B9C9D9E9FA0A1A2A3A4A5A6A7A8A9AAABACADAEAFB0B1B2B3B4B5B6B7B8B9BABBBCBDBEBFC0C1C2C3C4C5C6C7C8C9CACBCCCDCECFD0D1D2D3D4D5D6D7D8D9DADBDCDDDEDFE0E1E2E3E4E5E6E7E8E9EAEBECEDEEEFF0F1F2F3F4F5F6F7F8F9FAFBFCFDFEFF');
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
-- error: Oracle cannot store this decimal value: NUMBER keeps at most 38 significant digits: the value would be rounded
-- decimal, 31 decimals: decimal "0.1234567890123456789012345678901"
INSERT INTO "t" ("id", "v") VALUES (42, 0.1234567890123456789012345678901);
UPDATE "t" SET "id" = 1042, "v" = 0.1234567890123456789012345678901 WHERE "id" = 42;
DELETE FROM "t" WHERE "v" = 0.1234567890123456789012345678901;
-- decimal, 70 digits: decimal "1111111111111111111111111111111111111111111111111111111111111111111111"
-- error: Oracle cannot store this decimal value: NUMBER keeps at most 38 significant digits: the value would be rounded
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
INSERT INTO "t" ("id", "v") VALUES (48, INTERVAL '0 00:00:00' DAY TO SECOND(9));
UPDATE "t" SET "id" = 1048, "v" = INTERVAL '0 00:00:00' DAY TO SECOND(9) WHERE "id" = 48;
DELETE FROM "t" WHERE "v" = INTERVAL '0 00:00:00' DAY TO SECOND(9);
-- time, micros: time "23:59:59.123456"
INSERT INTO "t" ("id", "v") VALUES (49, INTERVAL '0 23:59:59.123456' DAY TO SECOND(9));
UPDATE "t" SET "id" = 1049, "v" = INTERVAL '0 23:59:59.123456' DAY TO SECOND(9) WHERE "id" = 49;
DELETE FROM "t" WHERE "v" = INTERVAL '0 23:59:59.123456' DAY TO SECOND(9);
-- time, nanos: time "12:34:56.123456789"
INSERT INTO "t" ("id", "v") VALUES (50, INTERVAL '0 12:34:56.123456789' DAY TO SECOND(9));
UPDATE "t" SET "id" = 1050, "v" = INTERVAL '0 12:34:56.123456789' DAY TO SECOND(9) WHERE "id" = 50;
DELETE FROM "t" WHERE "v" = INTERVAL '0 12:34:56.123456789' DAY TO SECOND(9);
-- time, 7 digits and zeros: time "12:34:56.123456700"
INSERT INTO "t" ("id", "v") VALUES (51, INTERVAL '0 12:34:56.123456700' DAY TO SECOND(9));
UPDATE "t" SET "id" = 1051, "v" = INTERVAL '0 12:34:56.123456700' DAY TO SECOND(9) WHERE "id" = 51;
DELETE FROM "t" WHERE "v" = INTERVAL '0 12:34:56.123456700' DAY TO SECOND(9);
-- timestamp: timestamp "2026-01-02 03:04:05"
INSERT INTO "t" ("id", "v") VALUES (52, TIMESTAMP '2026-01-02 03:04:05');
UPDATE "t" SET "id" = 1052, "v" = TIMESTAMP '2026-01-02 03:04:05' WHERE "id" = 52;
DELETE FROM "t" WHERE "v" = TIMESTAMP '2026-01-02 03:04:05';
-- timestamp, .5: timestamp "2026-01-02 03:04:05.5"
INSERT INTO "t" ("id", "v") VALUES (53, TIMESTAMP '2026-01-02 03:04:05.5');
UPDATE "t" SET "id" = 1053, "v" = TIMESTAMP '2026-01-02 03:04:05.5' WHERE "id" = 53;
DELETE FROM "t" WHERE "v" = TIMESTAMP '2026-01-02 03:04:05.5';
-- timestamp, nanos: timestamp "1999-12-31 23:59:59.999999999"
INSERT INTO "t" ("id", "v") VALUES (54, TIMESTAMP '1999-12-31 23:59:59.999999999');
UPDATE "t" SET "id" = 1054, "v" = TIMESTAMP '1999-12-31 23:59:59.999999999' WHERE "id" = 54;
DELETE FROM "t" WHERE "v" = TIMESTAMP '1999-12-31 23:59:59.999999999';
-- timestamptz: timestamptz "2026-01-02 03:04:05+00:00"
INSERT INTO "t" ("id", "v") VALUES (55, TIMESTAMP '2026-01-02 03:04:05 +00:00');
UPDATE "t" SET "id" = 1055, "v" = TIMESTAMP '2026-01-02 03:04:05 +00:00' WHERE "id" = 55;
DELETE FROM "t" WHERE "v" = TIMESTAMP '2026-01-02 03:04:05 +00:00';
-- timestamptz, micros: timestamptz "2026-01-02 03:04:05.123456+00:00"
INSERT INTO "t" ("id", "v") VALUES (56, TIMESTAMP '2026-01-02 03:04:05.123456 +00:00');
UPDATE "t" SET "id" = 1056, "v" = TIMESTAMP '2026-01-02 03:04:05.123456 +00:00' WHERE "id" = 56;
DELETE FROM "t" WHERE "v" = TIMESTAMP '2026-01-02 03:04:05.123456 +00:00';
-- timestamptz, not UTC: timestamptz "2026-01-02 11:04:05+08:00"
-- error: invalid timestamptz value "2026-01-02 11:04:05+08:00": expected YYYY-MM-DD HH:MM:SS[.fraction]+00:00 (normalised to UTC)
-- boolean true: true
INSERT INTO "t" ("id", "v") VALUES (58, 1);
UPDATE "t" SET "id" = 1058, "v" = 1 WHERE "id" = 58;
DELETE FROM "t" WHERE "v" = 1;
-- boolean false: false
INSERT INTO "t" ("id", "v") VALUES (59, 0);
UPDATE "t" SET "id" = 1059, "v" = 0 WHERE "id" = 59;
DELETE FROM "t" WHERE "v" = 0;
