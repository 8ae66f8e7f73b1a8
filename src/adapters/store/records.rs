//! The records both stores keep, written once. A store says how it runs a statement
//! ([`Statements`]) and where its dialect parts from the other's ([`Database`]); every record
//! trait is implemented here on top of that, with the statements of `sql.rs`.
//!
//! Arguments are [`Arg`]s, the values both drivers bind: a statement's arguments are written
//! once for both, and the two stores cannot drift apart in what they bind.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::sealed::{self, SealError, SecretBox};
use super::sql;
use super::{backend, from_json, instant, sql_limit, to_json};
use crate::adapters::webhooks::{
    outbox, Delivery, Outgoing, Settled, Signers, Webhook, WebhookStore,
};
use crate::domain::clock::Clock;
use crate::domain::storage::{StoreError, StoreResult};
use crate::partners::devices::{Device, DeviceStore};
use crate::partners::keys::{ApiKey, KeyStore, Organisation};
use crate::partners::uploads::{Consent, Upload, UploadStore};
use crate::tracking::eta::Snapshot;
use crate::tracking::sharing::{ShareLink, ShareStore};
use crate::tracking::shipment::{Shipment, Status};
use crate::tracking::store::{Fence, Leases, ShipmentStore};
use crate::tracking::tracker::Notice;
use crate::training::jobs::{Job, JobStore};

/// A statement's argument: a value both drivers bind (text, an integer, either optional).
pub trait Arg {
    fn sqlite(&self) -> &dyn rusqlite::ToSql;
    fn postgres(&self) -> &(dyn tokio_postgres::types::ToSql + Sync);
}

impl<T: rusqlite::ToSql + tokio_postgres::types::ToSql + Sync> Arg for T {
    fn sqlite(&self) -> &dyn rusqlite::ToSql {
        self
    }

    fn postgres(&self) -> &(dyn tokio_postgres::types::ToSql + Sync) {
        self
    }
}

/// One row of a query's answer, read a column at a time.
pub trait Columns {
    fn text(&self, column: usize) -> StoreResult<String>;
    fn integer(&self, column: usize) -> StoreResult<i64>;
}

/// What a query hands each row of its answer to.
pub type TakeRow<'a> = dyn FnMut(&dyn Columns) -> StoreResult<()> + 'a;

/// Where statements run: a store, or one of its transactions.
pub trait Statements {
    /// Runs a statement; the number of rows it changed.
    fn write(&self, sql: &str, args: &[&dyn Arg]) -> StoreResult<u64>;

    /// Runs a query, handing each row of its answer to `take` in order.
    fn each_row(&self, sql: &str, args: &[&dyn Arg], take: &mut TakeRow<'_>) -> StoreResult<()>;
}

/// The JSON bodies a query selects in its first column, as records.
pub trait Bodies: Statements {
    fn bodies<T: DeserializeOwned>(&self, sql: &str, args: &[&dyn Arg]) -> StoreResult<Vec<T>> {
        let mut bodies: Vec<T> = Vec::new();
        self.each_row(sql, args, &mut |row: &dyn Columns| -> StoreResult<()> {
            bodies.push(from_json(&row.text(0)?)?);
            Ok(())
        })?;
        Ok(bodies)
    }

    /// The first body the query finds, if any.
    fn body<T: DeserializeOwned>(&self, sql: &str, args: &[&dyn Arg]) -> StoreResult<Option<T>> {
        Ok(self.bodies(sql, args)?.into_iter().next())
    }
}

impl<S: Statements + ?Sized> Bodies for S {}

/// What one store does its own way: its clock, the statements its schema words differently,
/// its transactions, and the two writes whose strategy differs.
pub trait Database: Statements + Send + Sync + 'static {
    /// Milliseconds since the epoch by the database's clock, as SQL.
    const NOW_MS: &'static str;
    /// Appends an estimate to its shipment's history: its shipment's id, then its body.
    const APPEND_SNAPSHOT: &'static str;
    /// One organisation's webhook (the organisation, then the id), read to be changed within
    /// [`Database::exclusively`].
    const WEBHOOK_TO_CHANGE: &'static str;
    /// A webhook's deliveries, the latest recorded first: the webhook's id, then how many.
    const DELIVERIES: &'static str;
    /// A lease's token (its name), read within a fenced write's transaction and kept as read
    /// until the commit.
    const LEASE_TOKEN: &'static str;

    /// The key webhook secrets are sealed under; without one, they are kept in clear.
    fn sealing(&self) -> Option<&SecretBox>;

    /// Runs `work` in one transaction: committed when it succeeds, rolled back when it fails.
    /// Everything `work` reads and writes goes through the statements it is handed.
    fn in_transaction<T>(
        &self,
        work: impl FnOnce(&dyn Statements) -> StoreResult<T>,
    ) -> StoreResult<T>;

    /// Runs `work`, a read and the write that follows from it, with no other writer of the
    /// record in between.
    fn exclusively<T>(
        &self,
        work: impl FnOnce(&dyn Statements) -> StoreResult<T>,
    ) -> StoreResult<T>;

    /// Inserts `shipment` (`body` its JSON), or answers `DuplicateReference` with the id of the
    /// shipment its organisation registered under the same reference.
    fn insert_shipment_body(&self, shipment: &Shipment, body: &str) -> StoreResult<()>;

    /// Records a delivery attempt (`body` its JSON) in place of any recorded under the same
    /// id and attempt; either way it lists as the latest.
    fn record_delivery_body(&self, delivery: &Delivery, body: &str) -> StoreResult<()>;
}

/// Refuses, within the caller's transaction, a write made under `fence` once a newer holder
/// has its lease: checked first, before anything is written, and the lease kept as read until
/// the commit (`Database::LEASE_TOKEN`), so that no takeover lands between the check and the
/// write. A lease never taken supersedes nothing; a write under no fence is one no lease
/// governs (a request's, a tool's).
fn check_fence<S: Database>(statements: &dyn Statements, fence: Option<&Fence>) -> StoreResult<()> {
    let Some(fence) = fence else {
        return Ok(());
    };
    let current = first_integer(statements, S::LEASE_TOKEN, &[&fence.lease])?;
    if current.is_some_and(|token| token > fence.token) {
        return Err(StoreError::Fenced);
    }
    Ok(())
}

/// The integer in the first column of the first row a statement answers, if it answers any.
fn first_integer(
    statements: &dyn Statements,
    sql: &str,
    args: &[&dyn Arg],
) -> StoreResult<Option<i64>> {
    let mut first = None;
    statements.each_row(sql, args, &mut |row: &dyn Columns| -> StoreResult<()> {
        if first.is_none() {
            first = Some(row.integer(0)?);
        }
        Ok(())
    })?;
    Ok(first)
}

/// Runs `work` in one transaction behind the check of `fence`: a single statement of the
/// leader's gets the transaction its check needs.
pub fn fenced<S: Database, T>(
    store: &S,
    fence: Option<&Fence>,
    work: impl FnOnce(&dyn Statements) -> StoreResult<T>,
) -> StoreResult<T> {
    store.in_transaction(|statements| {
        check_fence::<S>(statements, fence)?;
        work(statements)
    })
}

/// Writes the outbox rows of `notices` through `statements` (the caller's transaction): one
/// per notice and webhook of its organisation subscribed to its event.
fn enqueue(statements: &dyn Statements, notices: &[Notice]) -> StoreResult<()> {
    if notices.is_empty() {
        return Ok(());
    }
    // The webhooks as stored, their secrets left sealed: fanning out needs none of them, and
    // a key that fails to open one must not stop an estimate or a stop event being saved.
    let mut webhooks: Vec<Webhook> = Vec::new();
    for organisation in outbox::organisations(notices) {
        webhooks.extend(statements.bodies::<Webhook>(sql::webhooks::LIST, &[&organisation])?);
    }
    let now = Clock::System.now();
    let now_ms = now.timestamp_millis();
    for row in outbox::fan_out(notices, &webhooks, now) {
        statements.write(
            sql::outbox::INSERT,
            &[
                &row.delivery_id,
                &row.webhook_id,
                &row.organisation,
                &row.event,
                &row.shipment_id,
                &row.body,
                &row.etas,
                &now_ms,
            ],
        )?;
    }
    Ok(())
}

/// A webhook as read: its secrets opened under the store's key, or taken as they are when
/// kept in clear. One that does not open is an error naming the webhook, never a secret
/// that would sign wrongly.
fn opened_webhook(secrets: Option<&SecretBox>, mut webhook: Webhook) -> StoreResult<Webhook> {
    match open_secrets(secrets, &mut webhook) {
        Ok(()) => Ok(webhook),
        Err(error) => Err(StoreError::Backend(format!(
            "webhook {}: {error}",
            webhook.id
        ))),
    }
}

fn open_secrets(secrets: Option<&SecretBox>, webhook: &mut Webhook) -> Result<(), SealError> {
    webhook.secret = sealed::open_with(secrets, &webhook.secret)?;
    if let Some(previous) = webhook.previous_secret.as_mut() {
        previous.secret = sealed::open_with(secrets, &previous.secret)?;
    }
    Ok(())
}

/// Each secret of a webhook as it opened, beside the form it was stored in.
fn secrets_read(stored: &Webhook, opened: &Webhook) -> Vec<(String, String)> {
    let mut read = vec![(opened.secret.clone(), stored.secret.clone())];
    if let (Some(opened), Some(stored)) = (&opened.previous_secret, &stored.previous_secret) {
        read.push((opened.secret.clone(), stored.secret.clone()));
    }
    read
}

/// `webhook`'s body as kept: its secrets sealed under the store's key, if it has one. A
/// secret `read` from the stored webhook keeps the sealed form it had: each delivery saves
/// its webhook's failure count, and sealing again then would spend a nonce per delivery.
fn kept_webhook(
    secrets: Option<&SecretBox>,
    webhook: &Webhook,
    read: &[(String, String)],
) -> StoreResult<String> {
    let seal = |clear: &str| -> StoreResult<String> {
        let unchanged = read.iter().find(|(opened, stored)| {
            secrets.is_some() && opened.as_str() == clear && sealed::is_sealed(stored)
        });
        match unchanged {
            Some((_, stored)) => Ok(stored.clone()),
            None => sealed::seal_with(secrets, clear).map_err(backend),
        }
    };
    let mut kept = webhook.clone();
    kept.secret = seal(webhook.secret.as_str())?;
    if let Some(previous) = kept.previous_secret.as_mut() {
        previous.secret = seal(previous.secret.as_str())?;
    }
    to_json(&kept)
}

/// Whether a stored webhook holds a secret in clear.
fn in_clear(stored: &Webhook) -> bool {
    !sealed::is_sealed(&stored.secret)
        || stored
            .previous_secret
            .as_ref()
            .is_some_and(|previous| !sealed::is_sealed(&previous.secret))
}

/// Seals, once, the webhook secrets `store` finds in clear when it gets its key at start
/// (kept by an earlier version, or by a store without a key), and says which webhooks hold
/// secrets this key does not open: they cannot sign until the key they were sealed under is
/// back. How many webhooks were sealed.
pub fn seal_kept_secrets<S: Database>(store: &S) -> StoreResult<usize> {
    let Some(secrets) = store.sealing() else {
        return Ok(0);
    };
    let everyone: Option<&str> = None;
    let mut sealed_now = 0;
    let mut unopened: Vec<String> = Vec::new();
    for kept in store.bodies::<Webhook>(sql::webhooks::LIST, &[&everyone])? {
        if opened_webhook(Some(secrets), kept.clone()).is_err() {
            unopened.push(kept.id);
            continue;
        }
        if !in_clear(&kept) {
            continue;
        }
        sealed_now += store.exclusively(|statements| -> StoreResult<usize> {
            let Some(stored): Option<Webhook> =
                statements.body(S::WEBHOOK_TO_CHANGE, &[&kept.organisation, &kept.id])?
            else {
                return Ok(0);
            };
            // Another replica starting meanwhile may have sealed it.
            if !in_clear(&stored) {
                return Ok(0);
            }
            let opened = opened_webhook(Some(secrets), stored.clone())?;
            let body = kept_webhook(Some(secrets), &opened, &secrets_read(&stored, &opened))?;
            statements.write(sql::webhooks::UPDATE, &[&body, &stored.id])?;
            Ok(1)
        })?;
    }
    if sealed_now > 0 {
        tracing::info!(
            message = "Webhook secrets kept in clear sealed.",
            webhooks = sealed_now
        );
    }
    if !unopened.is_empty() {
        tracing::error!(
            message = "Webhook secrets this key does not open: these webhooks cannot sign until \
                       the key they were sealed under is back (webhooks.secrets_key_file); \
                       if it is lost, delete them and create them again.",
            webhooks = ?unopened,
        );
    }
    Ok(sealed_now)
}

/// Seals every webhook secret of `store` under `new`, in one transaction: all of them or, when
/// one opens under neither the store's key nor `new`, none (the error names it). A webhook
/// already sealed under `new` is left as it is, so that a run cut short is finished by the
/// next. How many webhooks are sealed under `new` now.
pub fn reseal_secrets<S: Database>(store: &S, new: &SecretBox) -> StoreResult<usize> {
    let everyone: Option<&str> = None;
    let listed: Vec<Webhook> = store.bodies(sql::webhooks::LIST, &[&everyone])?;
    store.exclusively(|statements| -> StoreResult<usize> {
        let mut sealed = 0;
        for listed in &listed {
            let Some(stored): Option<Webhook> =
                statements.body(S::WEBHOOK_TO_CHANGE, &[&listed.organisation, &listed.id])?
            else {
                continue;
            };
            sealed += 1;
            let opened = match opened_webhook(store.sealing(), stored.clone()) {
                Ok(opened) => opened,
                Err(_) if opened_webhook(Some(new), stored.clone()).is_ok() => continue,
                Err(error) => return Err(error),
            };
            let body = kept_webhook(Some(new), &opened, &[])?;
            statements.write(sql::webhooks::UPDATE, &[&body, &stored.id])?;
        }
        Ok(sealed)
    })
}

/// A row of `sql::outbox::CLAIM`'s answer.
fn outgoing(row: &dyn Columns) -> StoreResult<Outgoing> {
    Ok(Outgoing {
        seq: row.integer(0)?,
        delivery_id: row.text(1)?,
        webhook_id: row.text(2)?,
        organisation: row.text(3)?,
        event: row.text(4)?,
        shipment_id: row.text(5)?,
        body: row.text(6)?,
        etas: outbox::etas_of(&row.text(7)?),
        // Written from a `u32` by `retry_outbox` and `settle_outbox`.
        attempts: u32::try_from(row.integer(8)?).unwrap_or(u32::MAX),
    })
}

impl<S: Database> ShipmentStore for S {
    fn insert_shipment(&self, shipment: &Shipment) -> StoreResult<()> {
        self.insert_shipment_body(shipment, &to_json(shipment)?)
    }

    fn save_shipment_under(
        &self,
        shipment: &mut Shipment,
        notices: &[Notice],
        fence: Option<&Fence>,
    ) -> StoreResult<()> {
        let mut saved = shipment.clone();
        saved.version += 1;
        let body = to_json(&saved)?;
        fenced(self, fence, |statements| {
            let changed = statements.write(
                sql::shipments::UPDATE,
                &[
                    &saved.status.as_str(),
                    &body,
                    &saved.version,
                    &saved.id,
                    &shipment.version,
                ],
            )?;
            if changed == 0 {
                return Err(StoreError::Conflict);
            }
            enqueue(statements, notices)
        })?;
        shipment.version = saved.version;
        Ok(())
    }

    fn shipment(&self, organisation: &str, id: &str) -> StoreResult<Option<Shipment>> {
        self.body(sql::shipments::GET, &[&organisation, &id])
    }

    fn list_shipments(
        &self,
        organisation: &str,
        status: Option<Status>,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Shipment>> {
        self.bodies(
            sql::shipments::PAGE,
            &[
                &organisation,
                &status.map(Status::as_str),
                &after.unwrap_or(""),
                &sql_limit(limit),
            ],
        )
    }

    fn active_shipments(&self) -> StoreResult<Vec<Shipment>> {
        self.bodies(sql::shipments::ACTIVE, &[])
    }

    fn recent_deliveries(&self, limit: usize) -> StoreResult<Vec<Shipment>> {
        self.bodies(sql::shipments::RECENT_DELIVERED, &[&sql_limit(limit)])
    }

    fn append_snapshot_under(
        &self,
        snapshot: &Snapshot,
        notices: &[Notice],
        fence: Option<&Fence>,
    ) -> StoreResult<()> {
        let body = to_json(snapshot)?;
        fenced(self, fence, |statements| {
            statements.write(S::APPEND_SNAPSHOT, &[&snapshot.shipment_id, &body])?;
            enqueue(statements, notices)
        })
    }

    fn snapshots(&self, shipment_id: &str) -> StoreResult<Vec<Snapshot>> {
        self.bodies(sql::snapshots::HISTORY, &[&shipment_id])
    }

    fn save_current_under(&self, snapshot: &Snapshot, fence: Option<&Fence>) -> StoreResult<()> {
        let body = to_json(snapshot)?;
        fenced(self, fence, |statements| {
            statements.write(
                sql::snapshots::SAVE_CURRENT,
                &[&snapshot.shipment_id, &body],
            )?;
            Ok(())
        })
    }

    fn current(&self, shipment_id: &str) -> StoreResult<Option<Snapshot>> {
        self.body(sql::snapshots::CURRENT, &[&shipment_id])
    }

    fn current_page(
        &self,
        organisation: &str,
        status: Option<Status>,
        first: &str,
        last: &str,
    ) -> StoreResult<Vec<Snapshot>> {
        self.bodies(
            sql::snapshots::CURRENT_PAGE,
            &[&organisation, &status.map(Status::as_str), &first, &last],
        )
    }

    fn latest_page(
        &self,
        organisation: &str,
        status: Option<Status>,
        first: &str,
        last: &str,
    ) -> StoreResult<Vec<Snapshot>> {
        self.bodies(
            sql::snapshots::LATEST_PAGE,
            &[&organisation, &status.map(Status::as_str), &first, &last],
        )
    }

    fn active_shipments_of(
        &self,
        organisation: &str,
        vehicle_id: &str,
    ) -> StoreResult<Vec<Shipment>> {
        self.bodies(
            sql::shipments::ACTIVE_OF_VEHICLE,
            &[&organisation, &vehicle_id],
        )
    }
}

impl<S: Database> WebhookStore for S {
    fn insert_webhook(&self, webhook: &Webhook) -> StoreResult<()> {
        self.write(
            sql::webhooks::INSERT,
            &[
                &webhook.id,
                &webhook.organisation,
                &kept_webhook(self.sealing(), webhook, &[])?,
            ],
        )?;
        Ok(())
    }

    fn webhooks(&self, organisation: Option<&str>) -> StoreResult<Vec<Webhook>> {
        self.bodies::<Webhook>(sql::webhooks::LIST, &[&organisation])?
            .into_iter()
            .map(|webhook| opened_webhook(self.sealing(), webhook))
            .collect()
    }

    fn signers(&self) -> StoreResult<Signers> {
        let everyone: Option<&str> = None;
        let mut signers = Signers::default();
        for webhook in self.bodies::<Webhook>(sql::webhooks::LIST, &[&everyone])? {
            let id = webhook.id.clone();
            match opened_webhook(self.sealing(), webhook) {
                Ok(opened) => signers.opened.push(opened),
                Err(_) => signers.unopened.push(id),
            }
        }
        Ok(signers)
    }

    fn delete_webhook(&self, organisation: &str, id: &str) -> StoreResult<bool> {
        let deleted = self.write(sql::webhooks::DELETE, &[&organisation, &id])?;
        Ok(deleted > 0)
    }

    fn update_webhook(
        &self,
        organisation: &str,
        id: &str,
        change: &mut dyn FnMut(&mut Webhook),
    ) -> StoreResult<Option<Webhook>> {
        let secrets = self.sealing();
        self.exclusively(|statements| {
            let Some(stored): Option<Webhook> =
                statements.body(S::WEBHOOK_TO_CHANGE, &[&organisation, &id])?
            else {
                return Ok(None);
            };
            let mut webhook = opened_webhook(secrets, stored.clone())?;
            let read = secrets_read(&stored, &webhook);
            change(&mut webhook);
            let body = kept_webhook(secrets, &webhook, &read)?;
            statements.write(sql::webhooks::UPDATE, &[&body, &id])?;
            Ok(Some(webhook))
        })
    }

    fn record_delivery(&self, delivery: &Delivery) -> StoreResult<()> {
        self.record_delivery_body(delivery, &to_json(delivery)?)
    }

    fn deliveries(&self, webhook_id: &str, limit: usize) -> StoreResult<Vec<Delivery>> {
        self.bodies(S::DELIVERIES, &[&webhook_id, &sql_limit(limit)])
    }

    fn delivery_attempts(&self, webhook_id: &str, delivery_id: &str) -> StoreResult<Vec<Delivery>> {
        self.bodies(
            sql::webhooks::DELIVERY_ATTEMPTS,
            &[&webhook_id, &delivery_id],
        )
    }

    fn claim_outbox(
        &self,
        now_ms: i64,
        hold_ms: i64,
        limit: usize,
        fence: Option<&Fence>,
    ) -> StoreResult<Vec<Outgoing>> {
        let mut claimed = fenced(self, fence, |statements| {
            let mut claimed: Vec<Outgoing> = Vec::new();
            statements.each_row(
                sql::outbox::CLAIM,
                &[&now_ms, &hold_ms, &sql_limit(limit)],
                &mut |row: &dyn Columns| -> StoreResult<()> {
                    claimed.push(outgoing(row)?);
                    Ok(())
                },
            )?;
            Ok(claimed)
        })?;
        // RETURNING gives the rows in no particular order.
        claimed.sort_by_key(|row| row.seq);
        Ok(claimed)
    }

    fn hold_outbox(&self, seq: i64, until_ms: i64, fence: Option<&Fence>) -> StoreResult<bool> {
        let held = fenced(self, fence, |statements| {
            statements.write(sql::outbox::HOLD, &[&until_ms, &seq])
        })?;
        Ok(held > 0)
    }

    fn retry_outbox(
        &self,
        seq: i64,
        attempts: u32,
        next_attempt_ms: i64,
        fence: Option<&Fence>,
    ) -> StoreResult<()> {
        fenced(self, fence, |statements| {
            statements.write(
                sql::outbox::RETRY,
                &[&i64::from(attempts), &next_attempt_ms, &seq],
            )?;
            Ok(())
        })
    }

    fn settle_outbox(
        &self,
        seq: i64,
        attempts: u32,
        settled: Settled,
        at_ms: i64,
        fence: Option<&Fence>,
    ) -> StoreResult<()> {
        fenced(self, fence, |statements| {
            statements.write(
                sql::outbox::SETTLE,
                &[&settled.as_str(), &i64::from(attempts), &at_ms, &seq],
            )?;
            Ok(())
        })
    }

    fn release_outbox(&self, fence: Option<&Fence>) -> StoreResult<u64> {
        fenced(self, fence, |statements| {
            statements.write(sql::outbox::RELEASE, &[])
        })
    }

    fn purge_outbox(&self, before_ms: i64) -> StoreResult<u64> {
        self.write(sql::outbox::PURGE, &[&before_ms])
    }
}

impl<S: Database> KeyStore for S {
    fn insert_organisation(&self, organisation: &Organisation) -> StoreResult<()> {
        self.write(
            sql::keys::INSERT_ORGANISATION,
            &[&organisation.id, &to_json(organisation)?],
        )?;
        Ok(())
    }

    fn organisations(&self) -> StoreResult<Vec<Organisation>> {
        self.bodies(sql::keys::ORGANISATIONS, &[])
    }

    fn insert_key(&self, key: &ApiKey) -> StoreResult<()> {
        self.write(
            sql::keys::INSERT_KEY,
            &[&key.id, &key.organisation, &to_json(key)?],
        )?;
        Ok(())
    }

    fn keys(&self, organisation: Option<&str>) -> StoreResult<Vec<ApiKey>> {
        self.bodies(sql::keys::KEYS, &[&organisation])
    }

    fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool> {
        let Some(mut key): Option<ApiKey> = self.body(sql::keys::KEY, &[&id])? else {
            return Ok(false);
        };
        if key.revoked_at.is_none() {
            key.revoked_at = Some(at);
        }
        self.write(sql::keys::UPDATE_KEY, &[&to_json(&key)?, &id])?;
        Ok(true)
    }
}

impl<S: Database> UploadStore for S {
    fn insert_upload(&self, upload: &Upload) -> StoreResult<()> {
        self.write(
            sql::uploads::INSERT,
            &[
                &upload.id,
                &upload.organisation,
                &upload.sha256,
                &to_json(upload)?,
            ],
        )?;
        Ok(())
    }

    fn uploads(&self, organisation: Option<&str>) -> StoreResult<Vec<Upload>> {
        self.bodies(sql::uploads::LIST, &[&organisation])
    }

    fn delete_upload(&self, organisation: &str, id: &str) -> StoreResult<bool> {
        let deleted = self.write(sql::uploads::DELETE, &[&organisation, &id])?;
        Ok(deleted > 0)
    }

    fn consent(&self, organisation: &str) -> StoreResult<Option<Consent>> {
        self.body(sql::uploads::CONSENT, &[&organisation])
    }

    fn set_consent(&self, consent: &Consent) -> StoreResult<()> {
        self.write(
            sql::uploads::SAVE_CONSENT,
            &[&consent.organisation, &to_json(consent)?],
        )?;
        Ok(())
    }
}

impl<S: Database> Leases for S {
    fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> StoreResult<Option<Fence>> {
        // Two statements rather than one upsert: on PostgreSQL an upsert that may change the
        // token would wait for the leader's fenced writes in flight at every renewal.
        let renewed = first_integer(
            self,
            &sql::leases::renew(S::NOW_MS),
            &[&ttl_ms, &name, &holder],
        )?;
        let token = match renewed {
            Some(token) => Some(token),
            None => first_integer(
                self,
                &sql::leases::acquire(S::NOW_MS),
                &[&name, &holder, &ttl_ms],
            )?,
        };
        Ok(token.map(|token| Fence {
            lease: name.to_owned(),
            token,
        }))
    }

    fn release_lease(&self, name: &str, holder: &str) -> StoreResult<()> {
        self.write(sql::leases::RELEASE, &[&name, &holder])?;
        Ok(())
    }
}

impl<S: Database> JobStore for S {
    fn save_job(&self, job: &Job) -> StoreResult<()> {
        self.write(
            sql::training_jobs::SAVE,
            &[
                &job.id,
                &job.status.as_str(),
                &instant(job.started_at),
                &job.finished_at.map(instant),
                &to_json(job)?,
            ],
        )?;
        Ok(())
    }

    fn job(&self, id: &str) -> StoreResult<Option<Job>> {
        self.body(sql::training_jobs::GET, &[&id])
    }

    fn running_jobs(&self) -> StoreResult<Vec<Job>> {
        self.bodies(sql::training_jobs::RUNNING, &[])
    }
}

impl<S: Database> ShareStore for S {
    fn insert_share_link(&self, link: &ShareLink, token_sha256: &str) -> StoreResult<()> {
        self.write(
            sql::share_links::INSERT,
            &[
                &link.id,
                &token_sha256,
                &link.organisation,
                &link.shipment_id,
                &to_json(link)?,
            ],
        )?;
        Ok(())
    }

    fn share_link_by_token(&self, token_sha256: &str) -> StoreResult<Option<ShareLink>> {
        self.body(sql::share_links::BY_TOKEN, &[&token_sha256])
    }

    fn share_link(
        &self,
        organisation: &str,
        shipment_id: &str,
        id: &str,
    ) -> StoreResult<Option<ShareLink>> {
        self.body(sql::share_links::OWNED, &[&organisation, &shipment_id, &id])
    }

    fn save_share_link(&self, link: &ShareLink) -> StoreResult<()> {
        self.write(sql::share_links::UPDATE, &[&to_json(link)?, &link.id])?;
        Ok(())
    }
}

impl<S: Database> DeviceStore for S {
    fn insert_device(&self, device: &Device, token_digest: &str) -> StoreResult<()> {
        self.write(
            sql::devices::INSERT,
            &[
                &device.id,
                &token_digest,
                &device.organisation,
                &to_json(device)?,
            ],
        )?;
        Ok(())
    }

    fn device_by_token(&self, token_digest: &str) -> StoreResult<Option<Device>> {
        self.body(sql::devices::BY_TOKEN, &[&token_digest])
    }

    fn devices(&self, organisation: &str) -> StoreResult<Vec<Device>> {
        self.bodies(sql::devices::LIST, &[&organisation])
    }

    fn device(&self, organisation: &str, id: &str) -> StoreResult<Option<Device>> {
        self.body(sql::devices::OWNED, &[&organisation, &id])
    }

    fn save_device(&self, device: &Device) -> StoreResult<()> {
        self.write(sql::devices::UPDATE, &[&to_json(device)?, &device.id])?;
        Ok(())
    }
}
