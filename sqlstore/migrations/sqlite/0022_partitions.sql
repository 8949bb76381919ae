-- Monthly partitions are a PostgreSQL matter (0022_partitions.sql there);
-- SQLite keeps its tables as they are. This file keeps the numbers of both
-- dialects equal.
SELECT 1;
