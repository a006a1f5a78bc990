-- Variant: vacuum the five accounts after every 100 dead row versions, never analyze them
-- automatically (statistics of five rows do not change; a fresh ANALYZE would only make every
-- session re-plan), and analyze them once now so the planner knows their size from the start.
ALTER TABLE accounts SET (
  autovacuum_vacuum_scale_factor = 0,
  autovacuum_vacuum_threshold = 100,
  autovacuum_analyze_scale_factor = 0,
  autovacuum_analyze_threshold = 2000000000
);
ANALYZE accounts;
