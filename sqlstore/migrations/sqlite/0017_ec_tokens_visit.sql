-- A payment asks how its visit's person was identified (a face alone pays
-- up to a cap): look the visit's token up by visit, not by scanning.
CREATE INDEX ec_tokens_visit ON ec_tokens(mdtrt_id) WHERE mdtrt_id <> '';
