-- contacts' own read model, written in the same transaction as the events it follows:
-- it answers list/show and keeps an email unique per org among live contacts.
CREATE TABLE IF NOT EXISTS contact_directory (
    contact_id   text PRIMARY KEY,
    org_id       text NOT NULL,
    kind         text NOT NULL,
    display_name text NOT NULL,
    email        text NOT NULL,
    portal_access boolean NOT NULL,
    mfa_epoch    integer NOT NULL,
    deleted      boolean NOT NULL,
    version      integer NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS contact_email_per_org
    ON contact_directory (org_id, lower(email)) WHERE NOT deleted;
CREATE INDEX IF NOT EXISTS contact_directory_by_org ON contact_directory (org_id);
