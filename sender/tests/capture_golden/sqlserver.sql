-- gapsync capture golden file: dialect sqlserver, rendered by gapsync_sender::capture::ddl.
-- Regenerate: GAPSYNC_BLESS=1 cargo test -p gapsync-sender --test capture_golden
-- Table plant_main -> mis_plant, key (id, name), layout 7; columns: id int, name text, value float, amount decimal, raw binary, day date, tod time, Read At timestamp, at_utc timestamptz, flag bool

-- base_ddl
IF OBJECT_ID(N'[_gapsync_changes]', N'U') IS NULL CREATE TABLE [_gapsync_changes]([id] BIGINT IDENTITY(1,1) PRIMARY KEY, [tbl] NVARCHAR(255) NOT NULL, [op] CHAR(1) NOT NULL, [layout] INT NOT NULL, [at] DATETIME2(7) NOT NULL DEFAULT SYSUTCDATETIME(), [txid] BIGINT NULL DEFAULT CURRENT_TRANSACTION_ID(), [batch] BIGINT NULL)
GO
IF NOT EXISTS (SELECT 1 FROM sys.indexes WHERE name = N'_gapsync_changes_batch' AND object_id = OBJECT_ID(N'[_gapsync_changes]')) CREATE INDEX [_gapsync_changes_batch] ON [_gapsync_changes]([batch])
GO
IF OBJECT_ID(N'[_gapsync_layouts]', N'U') IS NULL CREATE TABLE [_gapsync_layouts]([layout] INT PRIMARY KEY, [tbl] NVARCHAR(255) NOT NULL, [cols] NVARCHAR(MAX) NOT NULL, [keycols] NVARCHAR(MAX) NOT NULL, [classes] NVARCHAR(MAX) NOT NULL, [installed_at] NVARCHAR(40) NOT NULL)
GO
IF OBJECT_ID(N'[_gapsync_batches]', N'U') IS NULL CREATE TABLE [_gapsync_batches]([seq] BIGINT PRIMARY KEY, [kind] NVARCHAR(16) NOT NULL, [file] NVARCHAR(255) NOT NULL, [size] BIGINT NOT NULL, [sha256] NVARCHAR(64) NOT NULL, [statements] BIGINT NOT NULL, [changes] BIGINT NOT NULL, [first_id] BIGINT NULL, [last_id] BIGINT NULL, [state] NVARCHAR(16) NOT NULL, [attempts] INT NOT NULL, [reason] NVARCHAR(MAX) NULL, [created] NVARCHAR(40) NOT NULL, [updated] NVARCHAR(40) NOT NULL)
GO
IF OBJECT_ID(N'[_gapsync_state]', N'U') IS NULL CREATE TABLE [_gapsync_state]([name] NVARCHAR(64) PRIMARY KEY, [value] BIGINT NOT NULL)
GO
IF OBJECT_ID(N'[_gapsync_requests]', N'U') IS NULL CREATE TABLE [_gapsync_requests]([id] BIGINT IDENTITY(1,1) PRIMARY KEY, [kind] NVARCHAR(16) NOT NULL, [tbl] NVARCHAR(255) NOT NULL, [requested] NVARCHAR(40) NOT NULL)
GO
IF OBJECT_ID(N'[_gapsync_rejected]', N'U') IS NULL CREATE TABLE [_gapsync_rejected]([id] BIGINT IDENTITY(1,1) PRIMARY KEY, [change_id] BIGINT NULL, [tbl] NVARCHAR(255) NOT NULL, [what] NVARCHAR(16) NOT NULL, [reason] NVARCHAR(MAX) NOT NULL, [at] NVARCHAR(40) NOT NULL)
GO

-- width_ddl
IF COL_LENGTH(N'[_gapsync_changes]', N'k0') IS NULL ALTER TABLE [_gapsync_changes] ADD [k0] NVARCHAR(MAX) NULL
GO
IF COL_LENGTH(N'[_gapsync_changes]', N'k1') IS NULL ALTER TABLE [_gapsync_changes] ADD [k1] NVARCHAR(MAX) NULL
GO
IF COL_LENGTH(N'[_gapsync_changes]', N'c0') IS NULL ALTER TABLE [_gapsync_changes] ADD [c0] NVARCHAR(MAX) NULL
GO
IF COL_LENGTH(N'[_gapsync_changes]', N'c1') IS NULL ALTER TABLE [_gapsync_changes] ADD [c1] NVARCHAR(MAX) NULL
GO
IF COL_LENGTH(N'[_gapsync_changes]', N'c2') IS NULL ALTER TABLE [_gapsync_changes] ADD [c2] NVARCHAR(MAX) NULL
GO
IF COL_LENGTH(N'[_gapsync_changes]', N'c3') IS NULL ALTER TABLE [_gapsync_changes] ADD [c3] NVARCHAR(MAX) NULL
GO
IF COL_LENGTH(N'[_gapsync_changes]', N'c4') IS NULL ALTER TABLE [_gapsync_changes] ADD [c4] NVARCHAR(MAX) NULL
GO
IF COL_LENGTH(N'[_gapsync_changes]', N'c5') IS NULL ALTER TABLE [_gapsync_changes] ADD [c5] NVARCHAR(MAX) NULL
GO
IF COL_LENGTH(N'[_gapsync_changes]', N'c6') IS NULL ALTER TABLE [_gapsync_changes] ADD [c6] NVARCHAR(MAX) NULL
GO
IF COL_LENGTH(N'[_gapsync_changes]', N'c7') IS NULL ALTER TABLE [_gapsync_changes] ADD [c7] NVARCHAR(MAX) NULL
GO
IF COL_LENGTH(N'[_gapsync_changes]', N'c8') IS NULL ALTER TABLE [_gapsync_changes] ADD [c8] NVARCHAR(MAX) NULL
GO
IF COL_LENGTH(N'[_gapsync_changes]', N'c9') IS NULL ALTER TABLE [_gapsync_changes] ADD [c9] NVARCHAR(MAX) NULL
GO

-- trigger_ddl
CREATE OR ALTER TRIGGER [_gapsync_plant_main] ON [plant_main] AFTER INSERT, UPDATE, DELETE AS BEGIN SET NOCOUNT ON; INSERT INTO [_gapsync_changes]([tbl], [op], [layout], [k0], [k1]) SELECT N'plant_main', 'D', 7, CONVERT(NVARCHAR(20), d.[id]), CONVERT(NVARCHAR(MAX), d.[name]) FROM deleted d WHERE NOT EXISTS (SELECT 1 FROM inserted i WHERE i.[id] = d.[id] AND i.[name] = d.[name]); INSERT INTO [_gapsync_changes]([tbl], [op], [layout], [k0], [k1], [c0], [c1], [c2], [c3], [c4], [c5], [c6], [c7], [c8], [c9]) SELECT N'plant_main', 'U', 7, CONVERT(NVARCHAR(20), d.[id]), CONVERT(NVARCHAR(MAX), d.[name]), CONVERT(NVARCHAR(20), i.[id]), CONVERT(NVARCHAR(MAX), i.[name]), CONVERT(NVARCHAR(40), i.[value], 3), CONVERT(NVARCHAR(50), i.[amount], 2), CONVERT(NVARCHAR(MAX), i.[raw], 2), CONVERT(NVARCHAR(10), i.[day], 23), CONVERT(NVARCHAR(16), i.[tod]), CONVERT(NVARCHAR(27), i.[Read At], 121), CONVERT(NVARCHAR(27), CONVERT(DATETIME2(7), SWITCHOFFSET(i.[at_utc], '+00:00')), 121), CONVERT(NVARCHAR(1), i.[flag]) FROM deleted d JOIN inserted i ON i.[id] = d.[id] AND i.[name] = d.[name]; INSERT INTO [_gapsync_changes]([tbl], [op], [layout], [c0], [c1], [c2], [c3], [c4], [c5], [c6], [c7], [c8], [c9]) SELECT N'plant_main', 'I', 7, CONVERT(NVARCHAR(20), i.[id]), CONVERT(NVARCHAR(MAX), i.[name]), CONVERT(NVARCHAR(40), i.[value], 3), CONVERT(NVARCHAR(50), i.[amount], 2), CONVERT(NVARCHAR(MAX), i.[raw], 2), CONVERT(NVARCHAR(10), i.[day], 23), CONVERT(NVARCHAR(16), i.[tod]), CONVERT(NVARCHAR(27), i.[Read At], 121), CONVERT(NVARCHAR(27), CONVERT(DATETIME2(7), SWITCHOFFSET(i.[at_utc], '+00:00')), 121), CONVERT(NVARCHAR(1), i.[flag]) FROM inserted i WHERE NOT EXISTS (SELECT 1 FROM deleted d WHERE d.[id] = i.[id] AND d.[name] = i.[name]); END
GO

-- drop_trigger_ddl
DROP TRIGGER IF EXISTS [_gapsync_plant_main]
GO

-- purge_ddl
DROP TABLE IF EXISTS [_gapsync_changes]
GO
DROP TABLE IF EXISTS [_gapsync_layouts]
GO
DROP TABLE IF EXISTS [_gapsync_batches]
GO
DROP TABLE IF EXISTS [_gapsync_state]
GO
DROP TABLE IF EXISTS [_gapsync_requests]
GO
DROP TABLE IF EXISTS [_gapsync_rejected]
GO
