-- The table Asterisk's cdr_pgsql writes its CDRs into, for cti-bridge's [[pbx]] cdr_url
-- (see docs/asterisk.md, "Calls no link saw"). The columns are Asterisk's own; start,
-- answer and "end" are float8 so that cdr_pgsql writes the epoch with microseconds (with
-- timestamp columns it writes whole seconds, in cdr_pgsql.conf's timezone: set UTC).
-- cti-bridge only reads it: by start, and by linkedid.
CREATE TABLE IF NOT EXISTS cdr (
    accountcode varchar(80),
    src varchar(80),
    dst varchar(80),
    dcontext varchar(80),
    clid varchar(80),
    channel varchar(80),
    dstchannel varchar(80),
    lastapp varchar(80),
    lastdata varchar(80),
    start float8,
    answer float8,
    "end" float8,
    duration integer,
    billsec integer,
    disposition varchar(45),
    amaflags varchar(45),
    userfield varchar(256),
    uniqueid varchar(150),
    linkedid varchar(150),
    peeraccount varchar(80),
    sequence integer
);
CREATE INDEX IF NOT EXISTS cdr_start ON cdr (start);
