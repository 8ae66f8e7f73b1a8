//! The SQL both stores run as it is: PostgreSQL and SQLite agree on these statements.
//!
//! Placeholders are written `$N`, PostgreSQL's. SQLite reads `$N` as a named parameter and
//! numbers it by its first appearance, so each statement here names its placeholders first in
//! order (`$1` before `$2`): both engines then bind the same arguments alike. A test holds it.

/// Shipments.
pub mod shipments {
    /// The shipment an organisation registered under a reference.
    pub const ID_BY_REFERENCE: &str =
        "SELECT id FROM shipments WHERE organisation = $1 AND reference = $2";
    /// Compare-and-set: saves version `$3` over version `$5` only; no row changed means
    /// another writer saved the shipment since it was read.
    pub const UPDATE: &str = "UPDATE shipments SET status = $1, body = $2, version = $3
     WHERE id = $4 AND version = $5";
    pub const GET: &str = "SELECT body FROM shipments WHERE organisation = $1 AND id = $2";
    /// A page of an organisation's shipments, of one status or any.
    pub const PAGE: &str = "SELECT body FROM shipments
     WHERE organisation = $1 AND (CAST($2 AS TEXT) IS NULL OR status = $2) AND id > $3
     ORDER BY id LIMIT $4";
    pub const ACTIVE: &str =
        "SELECT body FROM shipments WHERE status IN ('planned', 'in_transit') ORDER BY id";
    /// The latest deliveries of every organisation, newest first (ids sort by creation).
    pub const RECENT_DELIVERED: &str =
        "SELECT body FROM shipments WHERE status = 'delivered' ORDER BY id DESC LIMIT $1";
    pub const ACTIVE_OF_VEHICLE: &str = "SELECT body FROM shipments
     WHERE organisation = $1 AND vehicle_id = $2 AND status IN ('planned', 'in_transit')
     ORDER BY id";
}

/// Estimates: the history of each shipment and its current one.
pub mod snapshots {
    pub const HISTORY: &str = "SELECT body FROM eta_snapshots WHERE shipment_id = $1 ORDER BY seq";
    pub const SAVE_CURRENT: &str =
        "INSERT INTO current_snapshots (shipment_id, body) VALUES ($1, $2)
     ON CONFLICT (shipment_id) DO UPDATE SET body = excluded.body";
    pub const CURRENT: &str = "SELECT body FROM current_snapshots WHERE shipment_id = $1";
    /// The current estimates of an organisation's shipments with ids from `$3` to `$4`, of one
    /// status or any: a listed page's in one query, bounded by the page's first and last ids.
    pub const CURRENT_PAGE: &str = "SELECT c.body FROM current_snapshots c
     JOIN shipments s ON s.id = c.shipment_id
     WHERE s.organisation = $1 AND (CAST($2 AS TEXT) IS NULL OR s.status = $2)
       AND s.id >= $3 AND s.id <= $4";
    /// The last kept estimate of each such shipment: what a finished one is answered with.
    pub const LATEST_PAGE: &str = "SELECT e.body FROM eta_snapshots e
     JOIN shipments s ON s.id = e.shipment_id
     WHERE s.organisation = $1 AND (CAST($2 AS TEXT) IS NULL OR s.status = $2)
       AND s.id >= $3 AND s.id <= $4
       AND e.seq = (SELECT MAX(l.seq) FROM eta_snapshots l WHERE l.shipment_id = e.shipment_id)";
}

/// Share links: the consignee's public page of one shipment.
pub mod share_links {
    /// The table, created alike by both stores' migrations. The token is kept as its SHA-256
    /// alone, so that a copy of the database opens no page.
    pub const TABLE: &str = "CREATE TABLE share_links (
        id TEXT PRIMARY KEY,
        token_sha256 TEXT NOT NULL UNIQUE,
        organisation TEXT NOT NULL,
        shipment_id TEXT NOT NULL REFERENCES shipments (id),
        body TEXT NOT NULL
    );
    CREATE INDEX share_links_by_shipment ON share_links (organisation, shipment_id);";
    pub const INSERT: &str =
        "INSERT INTO share_links (id, token_sha256, organisation, shipment_id, body)
     VALUES ($1, $2, $3, $4, $5)";
    pub const BY_TOKEN: &str = "SELECT body FROM share_links WHERE token_sha256 = $1";
    /// One organisation's link of one shipment.
    pub const OWNED: &str =
        "SELECT body FROM share_links WHERE organisation = $1 AND shipment_id = $2 AND id = $3";
    pub const UPDATE: &str = "UPDATE share_links SET body = $1 WHERE id = $2";
}

/// Phones' device tokens.
pub mod devices {
    /// The table, created alike by both stores' migrations. The token is kept as its keyed
    /// digest alone.
    pub const TABLE: &str = "CREATE TABLE devices (
        id TEXT PRIMARY KEY,
        token_digest TEXT NOT NULL UNIQUE,
        organisation TEXT NOT NULL REFERENCES organisations (id),
        body TEXT NOT NULL
    );
    CREATE INDEX devices_by_organisation ON devices (organisation, id);";
    pub const INSERT: &str =
        "INSERT INTO devices (id, token_digest, organisation, body) VALUES ($1, $2, $3, $4)";
    pub const BY_TOKEN: &str = "SELECT body FROM devices WHERE token_digest = $1";
    pub const LIST: &str = "SELECT body FROM devices WHERE organisation = $1 ORDER BY id";
    /// One organisation's device.
    pub const OWNED: &str = "SELECT body FROM devices WHERE organisation = $1 AND id = $2";
    pub const UPDATE: &str = "UPDATE devices SET body = $1 WHERE id = $2";
}

/// Webhooks.
pub mod webhooks {
    pub const INSERT: &str = "INSERT INTO webhooks (id, organisation, body) VALUES ($1, $2, $3)";
    /// Every webhook, or an organisation's.
    pub const LIST: &str =
        "SELECT body FROM webhooks WHERE CAST($1 AS TEXT) IS NULL OR organisation = $1 ORDER BY id";
    pub const DELETE: &str = "DELETE FROM webhooks WHERE organisation = $1 AND id = $2";
    pub const UPDATE: &str = "UPDATE webhooks SET body = $1 WHERE id = $2";
    /// One organisation's webhook.
    pub const OWNED: &str = "SELECT body FROM webhooks WHERE organisation = $1 AND id = $2";
    /// The attempts of one delivery of a webhook.
    pub const DELIVERY_ATTEMPTS: &str =
        "SELECT body FROM deliveries WHERE webhook_id = $1 AND id = $2 ORDER BY attempt";
}

/// Organisations and their keys.
pub mod keys {
    /// The tables, created alike by both stores' migrations. SQLite keeps the text of each
    /// `CREATE` as written, white space included: it is part of the schema, never to be edited.
    pub const TABLES: &str = "CREATE TABLE organisations (
                id TEXT PRIMARY KEY,
                body TEXT NOT NULL
            );
            CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                organisation TEXT NOT NULL REFERENCES organisations (id),
                body TEXT NOT NULL
            );";
    pub const INSERT_ORGANISATION: &str = "INSERT INTO organisations (id, body) VALUES ($1, $2)";
    pub const ORGANISATIONS: &str = "SELECT body FROM organisations ORDER BY id";
    pub const INSERT_KEY: &str =
        "INSERT INTO api_keys (id, organisation, body) VALUES ($1, $2, $3)";
    /// Every key, or an organisation's.
    pub const KEYS: &str =
        "SELECT body FROM api_keys WHERE CAST($1 AS TEXT) IS NULL OR organisation = $1 ORDER BY id";
    pub const KEY: &str = "SELECT body FROM api_keys WHERE id = $1";
    pub const UPDATE_KEY: &str = "UPDATE api_keys SET body = $1 WHERE id = $2";
}

/// Uploads and consents.
pub mod uploads {
    /// The tables, created alike by both stores' migrations (their text as SQLite keeps it).
    pub const TABLES: &str = "CREATE TABLE uploads (
                id TEXT PRIMARY KEY,
                organisation TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                body TEXT NOT NULL,
                UNIQUE (organisation, sha256)
            );
            CREATE TABLE consents (
                organisation TEXT PRIMARY KEY,
                body TEXT NOT NULL
            );";
    pub const INSERT: &str =
        "INSERT INTO uploads (id, organisation, sha256, body) VALUES ($1, $2, $3, $4)";
    /// Every upload, or an organisation's.
    pub const LIST: &str =
        "SELECT body FROM uploads WHERE CAST($1 AS TEXT) IS NULL OR organisation = $1 ORDER BY id";
    pub const DELETE: &str = "DELETE FROM uploads WHERE organisation = $1 AND id = $2";
    pub const CONSENT: &str = "SELECT body FROM consents WHERE organisation = $1";
    pub const SAVE_CONSENT: &str = "INSERT INTO consents (organisation, body) VALUES ($1, $2)
     ON CONFLICT (organisation) DO UPDATE SET body = excluded.body";
}

/// Leases.
pub mod leases {
    /// The fencing token of each lease, added alike by both stores' migrations (SQLite reads
    /// `BIGINT` as its `INTEGER`); a lease taken before it existed starts at 0. The index makes
    /// the token part of the row's key, so that on PostgreSQL a change of it (a takeover) waits
    /// for the key-share lock of each fenced write in flight and a renewal does not.
    pub const TOKENS: &str = "ALTER TABLE leases ADD COLUMN token BIGINT NOT NULL DEFAULT 0;
            CREATE UNIQUE INDEX leases_by_token ON leases (name, token);";
    /// Renews the lease `$2` of the holder `$3` until `$1` milliseconds from now, expired or
    /// not, and answers its token, left as it is; `now_ms` is the store's clock in its own
    /// dialect.
    pub fn renew(now_ms: &str) -> String {
        format!(
            "UPDATE leases SET expires_ms = {now_ms} + $1 WHERE name = $2 AND holder = $3
             RETURNING token"
        )
    }
    /// Takes the lease `$1` for the holder `$2` until `$3` milliseconds from now, if it is free
    /// or expired (or the holder's already, should a renewal have missed it), and answers its
    /// token: one more each time the holder changes.
    pub fn acquire(now_ms: &str) -> String {
        format!(
            "INSERT INTO leases (name, holder, expires_ms, token)
             VALUES ($1, $2, {now_ms} + $3, 1)
             ON CONFLICT (name) DO UPDATE
             SET holder = excluded.holder, expires_ms = excluded.expires_ms,
                 token = CASE WHEN leases.holder = excluded.holder THEN leases.token
                              ELSE leases.token + 1 END
             WHERE leases.holder = excluded.holder OR leases.expires_ms < {now_ms}
             RETURNING token"
        )
    }
    /// Expires the lease rather than delete it: a lease inserted again would start its token
    /// over, below the fences of writes still in flight.
    pub const RELEASE: &str = "UPDATE leases SET expires_ms = 0 WHERE name = $1 AND holder = $2";
}

/// Training jobs.
pub mod training_jobs {
    /// The table, created alike by both stores' migrations.
    pub const TABLE: &str = "CREATE TABLE training_jobs (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        body TEXT NOT NULL
    );
    CREATE INDEX training_jobs_by_status ON training_jobs (status, started_at);";
    /// Inserts a job or replaces what was kept of it; `started_at` never changes.
    pub const SAVE: &str = "INSERT INTO training_jobs (id, status, started_at, finished_at, body)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (id) DO UPDATE
     SET status = excluded.status, finished_at = excluded.finished_at, body = excluded.body";
    pub const GET: &str = "SELECT body FROM training_jobs WHERE id = $1";
    pub const RUNNING: &str =
        "SELECT body FROM training_jobs WHERE status = 'running' ORDER BY started_at, id";
}

/// The webhooks' outbox: one row per notice and subscribed webhook, `pending` until it is
/// `delivered`, `failed` or `dropped`. Instants are milliseconds since the epoch.
pub mod outbox {
    pub const INSERT: &str = "INSERT INTO outbox (delivery_id, webhook_id, organisation, event,
     shipment_id, body, etas, attempts, status, next_attempt_at_ms, claimed_until_ms,
     created_at_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 'pending', $8, 0, $8)";
    /// Holds up to `$3` due deliveries no one holds until `$1 + $2`, oldest first. The outer
    /// test of the claim is checked again on a row another claim changed meanwhile
    /// (PostgreSQL's read committed), so that two claims at once never take one row twice.
    pub const CLAIM: &str = "UPDATE outbox
     SET claimed_until_ms = CAST($1 AS BIGINT) + CAST($2 AS BIGINT)
     WHERE status = 'pending' AND claimed_until_ms <= $1 AND seq IN (
        SELECT seq FROM outbox
        WHERE status = 'pending' AND next_attempt_at_ms <= $1 AND claimed_until_ms <= $1
        ORDER BY seq LIMIT $3)
     RETURNING seq, delivery_id, webhook_id, organisation, event, shipment_id, body, etas,
        attempts";
    /// Holds a claimed delivery `$2` again, until `$1`, if it is still pending.
    pub const HOLD: &str = "UPDATE outbox SET claimed_until_ms = $1
     WHERE seq = $2 AND status = 'pending'";
    pub const RETRY: &str = "UPDATE outbox
     SET attempts = $1, next_attempt_at_ms = $2, claimed_until_ms = 0 WHERE seq = $3";
    /// Settles a delivery; `next_attempt_at_ms` then says when, for the purge.
    pub const SETTLE: &str = "UPDATE outbox
     SET status = $1, attempts = $2, next_attempt_at_ms = $3, claimed_until_ms = 0 WHERE seq = $4";
    pub const RELEASE: &str =
        "UPDATE outbox SET claimed_until_ms = 0 WHERE status = 'pending' AND claimed_until_ms > 0";
    pub const PURGE: &str =
        "DELETE FROM outbox WHERE status <> 'pending' AND next_attempt_at_ms < $1";
}

/// Every statement above, for the test.
#[cfg(test)]
const ALL: &[&str] = &[
    shipments::ID_BY_REFERENCE,
    shipments::UPDATE,
    shipments::GET,
    shipments::PAGE,
    shipments::ACTIVE,
    shipments::RECENT_DELIVERED,
    shipments::ACTIVE_OF_VEHICLE,
    snapshots::HISTORY,
    snapshots::SAVE_CURRENT,
    snapshots::CURRENT,
    snapshots::CURRENT_PAGE,
    snapshots::LATEST_PAGE,
    share_links::INSERT,
    share_links::BY_TOKEN,
    share_links::OWNED,
    share_links::UPDATE,
    devices::INSERT,
    devices::BY_TOKEN,
    devices::LIST,
    devices::OWNED,
    devices::UPDATE,
    webhooks::INSERT,
    webhooks::LIST,
    webhooks::DELETE,
    webhooks::UPDATE,
    webhooks::OWNED,
    webhooks::DELIVERY_ATTEMPTS,
    keys::INSERT_ORGANISATION,
    keys::ORGANISATIONS,
    keys::INSERT_KEY,
    keys::KEYS,
    keys::KEY,
    keys::UPDATE_KEY,
    uploads::INSERT,
    uploads::LIST,
    uploads::DELETE,
    uploads::CONSENT,
    uploads::SAVE_CONSENT,
    leases::RELEASE,
    training_jobs::SAVE,
    training_jobs::GET,
    training_jobs::RUNNING,
    outbox::INSERT,
    outbox::CLAIM,
    outbox::HOLD,
    outbox::RETRY,
    outbox::SETTLE,
    outbox::RELEASE,
    outbox::PURGE,
];

#[cfg(test)]
mod tests {
    use super::{leases, ALL};
    use crate::adapters::store::postgres::PostgresStore;
    use crate::adapters::store::records::Database;
    use crate::adapters::store::sqlite::SqliteStore;

    fn assert_placeholders_in_order(statement: &str) {
        let mut highest = 0;
        let mut rest = statement;
        while let Some(at) = rest.find('$') {
            rest = &rest[at + 1..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let number: usize = digits.parse().expect("a numbered placeholder");
            assert!(
                number <= highest + 1,
                "${number} before ${} in {statement}",
                highest + 1
            );
            highest = highest.max(number);
        }
    }

    #[test]
    fn placeholders_first_appear_in_order_so_both_engines_bind_alike() {
        for statement in ALL {
            assert_placeholders_in_order(statement);
        }
        // The lease's statements, with each store's clock in place.
        for now_ms in [
            <SqliteStore as Database>::NOW_MS,
            <PostgresStore as Database>::NOW_MS,
        ] {
            assert_placeholders_in_order(&leases::renew(now_ms));
            assert_placeholders_in_order(&leases::acquire(now_ms));
        }
    }
}
