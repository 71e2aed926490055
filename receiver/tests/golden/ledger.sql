-- sqlite: session set-up
-- sqlite: ledger
CREATE TABLE IF NOT EXISTS "_gapsync_ledger"("node" VARCHAR(32) NOT NULL, "seq" BIGINT NOT NULL, "sha256" VARCHAR(64) NOT NULL, "file" VARCHAR(255) NOT NULL, "statements" BIGINT NOT NULL, "applied_at" VARCHAR(32) NOT NULL, PRIMARY KEY ("node", "seq"));
CREATE TABLE IF NOT EXISTS "_gapsync_quarantine"("node" VARCHAR(32) NOT NULL, "seq" BIGINT NOT NULL, "sha256" VARCHAR(64) NOT NULL, "file" VARCHAR(255) NOT NULL, "reason" TEXT NOT NULL, "at" VARCHAR(32) NOT NULL, PRIMARY KEY ("node", "seq"));
-- sql92: session set-up
-- sql92: ledger
CREATE TABLE IF NOT EXISTS "_gapsync_ledger"("node" VARCHAR(32) NOT NULL, "seq" BIGINT NOT NULL, "sha256" VARCHAR(64) NOT NULL, "file" VARCHAR(255) NOT NULL, "statements" BIGINT NOT NULL, "applied_at" VARCHAR(32) NOT NULL, PRIMARY KEY ("node", "seq"));
CREATE TABLE IF NOT EXISTS "_gapsync_quarantine"("node" VARCHAR(32) NOT NULL, "seq" BIGINT NOT NULL, "sha256" VARCHAR(64) NOT NULL, "file" VARCHAR(255) NOT NULL, "reason" TEXT NOT NULL, "at" VARCHAR(32) NOT NULL, PRIMARY KEY ("node", "seq"));
-- postgres: session set-up
SET standard_conforming_strings = on;
SET TIME ZONE 'UTC';
SET client_encoding = 'UTF8';
SET extra_float_digits = 3;
-- postgres: ledger
CREATE TABLE IF NOT EXISTS "_gapsync_ledger"("node" VARCHAR(32) NOT NULL, "seq" BIGINT NOT NULL, "sha256" VARCHAR(64) NOT NULL, "file" VARCHAR(255) NOT NULL, "statements" BIGINT NOT NULL, "applied_at" VARCHAR(32) NOT NULL, PRIMARY KEY ("node", "seq"));
CREATE TABLE IF NOT EXISTS "_gapsync_quarantine"("node" VARCHAR(32) NOT NULL, "seq" BIGINT NOT NULL, "sha256" VARCHAR(64) NOT NULL, "file" VARCHAR(255) NOT NULL, "reason" TEXT NOT NULL, "at" VARCHAR(32) NOT NULL, PRIMARY KEY ("node", "seq"));
-- mysql: session set-up
SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',NO_BACKSLASH_ESCAPES,ANSI_QUOTES,STRICT_ALL_TABLES');
SET time_zone = '+00:00';
-- mysql: ledger
CREATE TABLE IF NOT EXISTS "_gapsync_ledger"("node" VARCHAR(32) NOT NULL, "seq" BIGINT NOT NULL, "sha256" VARCHAR(64) NOT NULL, "file" VARCHAR(255) NOT NULL, "statements" BIGINT NOT NULL, "applied_at" VARCHAR(32) NOT NULL, PRIMARY KEY ("node", "seq"));
CREATE TABLE IF NOT EXISTS "_gapsync_quarantine"("node" VARCHAR(32) NOT NULL, "seq" BIGINT NOT NULL, "sha256" VARCHAR(64) NOT NULL, "file" VARCHAR(255) NOT NULL, "reason" TEXT NOT NULL, "at" VARCHAR(32) NOT NULL, PRIMARY KEY ("node", "seq"));
-- sqlserver: session set-up
SET QUOTED_IDENTIFIER ON;
SET ANSI_NULLS ON;
SET XACT_ABORT ON;
SET NOCOUNT OFF;
-- sqlserver: ledger
IF OBJECT_ID(N'_gapsync_ledger', N'U') IS NULL CREATE TABLE "_gapsync_ledger"("node" NVARCHAR(32) NOT NULL, "seq" BIGINT NOT NULL, "sha256" NVARCHAR(64) NOT NULL, "file" NVARCHAR(255) NOT NULL, "statements" BIGINT NOT NULL, "applied_at" NVARCHAR(32) NOT NULL, PRIMARY KEY ("node", "seq"));
IF OBJECT_ID(N'_gapsync_quarantine', N'U') IS NULL CREATE TABLE "_gapsync_quarantine"("node" NVARCHAR(32) NOT NULL, "seq" BIGINT NOT NULL, "sha256" NVARCHAR(64) NOT NULL, "file" NVARCHAR(255) NOT NULL, "reason" NVARCHAR(MAX) NOT NULL, "at" NVARCHAR(32) NOT NULL, PRIMARY KEY ("node", "seq"));
-- oracle: session set-up
ALTER SESSION SET TIME_ZONE = '+00:00';
ALTER SESSION SET NLS_NUMERIC_CHARACTERS = '.,';
-- oracle: ledger
BEGIN EXECUTE IMMEDIATE 'CREATE TABLE "_gapsync_ledger"("node" VARCHAR2(32) NOT NULL, "seq" NUMBER(19) NOT NULL, "sha256" VARCHAR2(64) NOT NULL, "file" VARCHAR2(255) NOT NULL, "statements" NUMBER(19) NOT NULL, "applied_at" VARCHAR2(32) NOT NULL, PRIMARY KEY ("node", "seq"))'; EXCEPTION WHEN OTHERS THEN IF SQLCODE != -955 THEN RAISE; END IF; END;
BEGIN EXECUTE IMMEDIATE 'CREATE TABLE "_gapsync_quarantine"("node" VARCHAR2(32) NOT NULL, "seq" NUMBER(19) NOT NULL, "sha256" VARCHAR2(64) NOT NULL, "file" VARCHAR2(255) NOT NULL, "reason" NCLOB NOT NULL, "at" VARCHAR2(32) NOT NULL, PRIMARY KEY ("node", "seq"))'; EXCEPTION WHEN OTHERS THEN IF SQLCODE != -955 THEN RAISE; END IF; END;
-- dm: session set-up
ALTER SESSION SET TIME_ZONE = '+00:00';
ALTER SESSION SET NLS_NUMERIC_CHARACTERS = '.,';
-- dm: ledger
BEGIN EXECUTE IMMEDIATE 'CREATE TABLE "_gapsync_ledger"("node" VARCHAR2(32) NOT NULL, "seq" BIGINT NOT NULL, "sha256" VARCHAR2(64) NOT NULL, "file" VARCHAR2(255) NOT NULL, "statements" BIGINT NOT NULL, "applied_at" VARCHAR2(32) NOT NULL, PRIMARY KEY ("node", "seq"))'; EXCEPTION WHEN OTHERS THEN IF SQLCODE != -2124 THEN RAISE; END IF; END;
BEGIN EXECUTE IMMEDIATE 'CREATE TABLE "_gapsync_quarantine"("node" VARCHAR2(32) NOT NULL, "seq" BIGINT NOT NULL, "sha256" VARCHAR2(64) NOT NULL, "file" VARCHAR2(255) NOT NULL, "reason" CLOB NOT NULL, "at" VARCHAR2(32) NOT NULL, PRIMARY KEY ("node", "seq"))'; EXCEPTION WHEN OTHERS THEN IF SQLCODE != -2124 THEN RAISE; END IF; END;
