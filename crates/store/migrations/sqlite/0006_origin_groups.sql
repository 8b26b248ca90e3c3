-- Origin groups (/cdn/origin_groups), kept as their Gcore JSON. A resource refers to its group
-- by a column as well as in its body, so that the database refuses to delete a group in use and
-- a group's change can raise the version of the resources using it (edges get them again).
CREATE TABLE origin_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body TEXT NOT NULL
);
ALTER TABLE resources ADD COLUMN origin_group_id INTEGER REFERENCES origin_groups (id);
CREATE INDEX resources_origin_group ON resources (origin_group_id);
