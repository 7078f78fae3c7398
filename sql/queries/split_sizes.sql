-- Training and evaluation rows per scope and category.
SELECT scope, role, category, category_role, n FROM split_summary;
