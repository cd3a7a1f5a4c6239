-- Variant "none": no counter at all. The physical limit the others are measured against.
SELECT 1;
