//! Organisations, API keys and roles.
//!
//! A key reads `etp_<id>_<secret>`: the id finds the record, the secret is checked against its
//! keyed hash (HMAC-SHA256 under the service's own pepper, kept in the data directory and never
//! in the database) in constant time. Only the hash is stored; the key is shown once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::domain::clock::Clock;
use crate::domain::ids::new_id;
use crate::domain::storage::{StoreError, StoreResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// ETAs, shipments, positions and webhooks of its organisation.
    Carrier,
    /// Reads its organisation's shipments, ETAs and positions; the dashboard.
    Dispatcher,
    /// Uploads its organisation's history and reads its reports.
    Partner,
    /// Manages its organisation's keys and webhooks, and no other organisation's.
    Admin,
    /// Runs the installation: organisations and their keys, training and the served model.
    /// Only the command line and the first start issue it, never the API.
    Operator,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Self::Carrier,
        Self::Dispatcher,
        Self::Partner,
        Self::Admin,
        Self::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Carrier => "carrier",
            Self::Dispatcher => "dispatcher",
            Self::Partner => "partner",
            Self::Admin => "admin",
            Self::Operator => "operator",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organisation {
    pub id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub organisation: String,
    pub name: String,
    pub roles: Vec<Role>,
    /// Hex HMAC-SHA256 of the secret under the pepper.
    pub hash: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Who is calling, once the key checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub organisation: String,
    pub key_id: String,
    pub roles: Vec<Role>,
}

impl Caller {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// An operator manages every organisation's keys, an admin its own organisation's alone.
    pub fn manages_keys_of(&self, organisation: &str) -> bool {
        self.has(Role::Operator) || (self.has(Role::Admin) && self.organisation == organisation)
    }

    /// Whether a key this caller issues may carry `role`. An admin grants only what it holds,
    /// so that no key it issues reaches further than itself. An operator gives organisations
    /// their keys, whatever their roles, but never its own: a key that acts on every
    /// organisation comes from the machine the service runs on, not from a request.
    pub fn may_grant(&self, role: Role) -> bool {
        match role {
            Role::Operator => false,
            Role::Carrier | Role::Dispatcher | Role::Partner | Role::Admin => {
                self.has(Role::Operator) || (self.has(Role::Admin) && self.has(role))
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("an Authorization: Bearer <key> header is required")]
    Missing,
    #[error("the key is not valid")]
    Invalid,
    #[error("the key was revoked")]
    Revoked,
}

const PREFIX: &str = "etp_";
const PEPPER_FILE: &str = "pepper.key";

/// The keys of every organisation, cached; the store stays the truth.
pub struct Keyring {
    pepper: Vec<u8>,
    store: Arc<dyn KeyStore>,
    keys: RwLock<HashMap<String, ApiKey>>,
    /// Keys are read again from the store at most this often.
    last_reload: Mutex<Instant>,
}

const RELOAD_AT_MOST_EVERY: Duration = Duration::from_secs(1);

fn digest(pepper: &[u8], secret: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(pepper).expect("any key length");
    mac.update(secret.as_bytes());
    mac
}

impl Keyring {
    /// Reads the pepper from the data directory, creating it at first start.
    pub fn open(data_dir: &Path, store: Arc<dyn KeyStore>) -> anyhow::Result<Self> {
        let path = data_dir.join(PEPPER_FILE);
        let pepper = match std::fs::read(&path) {
            Ok(pepper) if pepper.len() >= 32 => pepper,
            Ok(_) => anyhow::bail!("{} is shorter than 32 bytes", path.display()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let pepper: [u8; 32] = rand::random();
                write_private(&path, &pepper)?;
                pepper.to_vec()
            }
            Err(error) => return Err(error.into()),
        };
        let keyring = Self {
            pepper,
            store,
            keys: RwLock::new(HashMap::new()),
            last_reload: Mutex::new(Instant::now()),
        };
        keyring.reload()?;
        Ok(keyring)
    }

    pub fn reload(&self) -> Result<(), StoreError> {
        let keys = self.store.keys(None)?;
        *self
            .keys
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) =
            keys.into_iter().map(|key| (key.id.clone(), key)).collect();
        *self
            .last_reload
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
        Ok(())
    }

    /// Reads the keys again when the last read is a second old, whatever the traffic.
    fn refresh(&self) {
        let due = self
            .last_reload
            .lock()
            .map(|last| last.elapsed() >= RELOAD_AT_MOST_EVERY)
            .unwrap_or(true);
        if due {
            if let Err(error) = self.reload() {
                tracing::error!(message = "Keys could not be read again.", %error);
                // The keys known stay in force; while the database is down, one request a
                // second tries it again, not every request (each would wait on the pool).
                *self
                    .last_reload
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Instant::now();
            }
        }
    }

    /// Creates an organisation, the same checks for the API and the command line: an id of 2
    /// to 40 lowercase letters, digits and dashes, not taken yet, and a name of 1 to 200
    /// characters.
    pub fn create_organisation(
        &self,
        id: &str,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Organisation, AccessError> {
        let slug = (2..=40).contains(&id.len())
            && id
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
        if !slug {
            return Err(AccessError::Invalid {
                field: "id".into(),
                message: "id must have 2 to 40 lowercase letters, digits and dashes".into(),
            });
        }
        let organisation = Organisation {
            id: id.to_owned(),
            name: checked_name(name)?,
            created_at: now,
        };
        if self
            .store
            .organisations()?
            .iter()
            .any(|known| known.id == id)
        {
            return Err(AccessError::Exists(id.to_owned()));
        }
        self.store.insert_organisation(&organisation)?;
        Ok(organisation)
    }

    /// Issues a key to an existing organisation: a name of 1 to 200 characters and at least one
    /// role (each once). Returns the record kept and the key, to be shown once.
    pub fn create_key(
        &self,
        organisation: &str,
        name: &str,
        roles: &[Role],
    ) -> Result<(ApiKey, String), AccessError> {
        let mut distinct: Vec<Role> = Vec::with_capacity(roles.len());
        for role in roles {
            if !distinct.contains(role) {
                distinct.push(*role);
            }
        }
        if distinct.is_empty() {
            return Err(AccessError::Invalid {
                field: "roles".into(),
                message: "a key needs at least one role".into(),
            });
        }
        let name = checked_name(name)?;
        let known = self.store.organisations()?;
        if !known.iter().any(|known| known.id == organisation) {
            return Err(AccessError::UnknownOrganisation(organisation.to_owned()));
        }
        let (record, key) = self.issue(organisation, &name, distinct);
        self.store.insert_key(&record)?;
        self.reload()?;
        Ok((record, key))
    }

    /// Makes a key: the record to store and the key to show once.
    pub fn issue(&self, organisation: &str, name: &str, roles: Vec<Role>) -> (ApiKey, String) {
        let id = new_id("key").trim_start_matches("key_").to_owned();
        let secret = hex::encode(rand::random::<[u8; 24]>());
        let hash = hex::encode(digest(&self.pepper, &secret).finalize().into_bytes());
        let record = ApiKey {
            id: id.clone(),
            organisation: organisation.to_owned(),
            name: name.to_owned(),
            roles,
            hash,
            created_at: Clock::System.now(),
            revoked_at: None,
        };
        (record, format!("{PREFIX}{id}_{secret}"))
    }

    /// The keyed digest a device token is kept and looked up by (hex HMAC-SHA256 under the
    /// pepper, as a key's secret): a copy of the database without the pepper can neither open
    /// a device nor check a guessed token offline.
    pub fn token_digest(&self, token: &str) -> String {
        hex::encode(digest(&self.pepper, token).finalize().into_bytes())
    }

    /// The caller behind an `Authorization` header value.
    pub fn authenticate(&self, header: Option<&str>) -> Result<Caller, AuthError> {
        let token = header
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(AuthError::Missing)?;
        let (id, secret) = token
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .ok_or(AuthError::Invalid)?;
        // Keys made or revoked by `etape keys` while the service runs count within a second.
        self.refresh();
        let key = self
            .keys
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(id)
            .cloned()
            .ok_or(AuthError::Invalid)?;
        let expected = hex::decode(&key.hash).map_err(|_| AuthError::Invalid)?;
        digest(&self.pepper, secret)
            .verify_slice(&expected)
            .map_err(|_| AuthError::Invalid)?;
        if key.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        Ok(Caller {
            organisation: key.organisation.clone(),
            key_id: key.id.clone(),
            roles: key.roles.clone(),
        })
    }
}

/// Writes a file only its owner can read, whole or not at all.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let partial = path.with_extension("partial");
    let mut file = create_private(&partial)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&partial, path)
}

/// Creates (or truncates) a file for writing that only its owner can read. The mode is asked
/// for here rather than left to the process's umask: a file renamed into place keeps it.
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Creates a directory, and the parents it lacks, that only its owner can enter.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Why an organisation or a key was not created.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("{message}")]
    Invalid { field: String, message: String },
    #[error("organisation {0} already exists")]
    Exists(String),
    #[error("no organisation {0}")]
    UnknownOrganisation(String),
    #[error(transparent)]
    Storage(#[from] StoreError),
}

fn checked_name(name: &str) -> Result<String, AccessError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(AccessError::Invalid {
            field: "name".into(),
            message: "name must have 1 to 200 characters".into(),
        });
    }
    Ok(name.to_owned())
}

/// The organisation and keys the embedded default starts with.
pub const DEMO_ORGANISATION: &str = "demo";
pub const DEMO_KEYS_FILE: &str = "demo-keys.env";

/// The demo dispatcher's key, from the file the first start wrote; `None` without it.
pub fn demo_dispatcher_key(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join(DEMO_KEYS_FILE)).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("ETAPE_DISPATCHER_KEY="))
        .map(|key| key.trim().to_owned())
}

/// At first start (no organisation yet): the demo organisation and one key per role, written
/// to `demo-keys.env` in the data directory (owner-only) and returned to be printed once. The
/// operator's key is the installation's first, kept under `demo` since a key needs an
/// organisation; the demo admin cannot revoke it.
pub fn bootstrap(
    data_dir: &Path,
    keyring: &Keyring,
) -> anyhow::Result<Option<Vec<(Role, String)>>> {
    let store = &*keyring.store;
    if !store.organisations()?.is_empty() {
        return Ok(None);
    }
    store.insert_organisation(&Organisation {
        id: DEMO_ORGANISATION.into(),
        name: "Demo carrier".into(),
        created_at: Clock::System.now(),
    })?;
    let mut issued = Vec::new();
    let mut file = String::from("# The demo organisation's keys, shown once. source this file.\n");
    for role in Role::ALL {
        let (record, key) = keyring.issue(
            DEMO_ORGANISATION,
            &format!("demo {}", role.as_str()),
            vec![role],
        );
        store.insert_key(&record)?;
        file.push_str(&format!(
            "ETAPE_{}_KEY={key}\n",
            role.as_str().to_ascii_uppercase()
        ));
        issued.push((role, key));
    }
    write_private(&data_dir.join(DEMO_KEYS_FILE), file.as_bytes())?;
    keyring.reload()?;
    Ok(Some(issued))
}

/// Where organisations and their keys are kept.
pub trait KeyStore: Send + Sync + 'static {
    fn insert_organisation(&self, organisation: &Organisation) -> StoreResult<()>;

    fn organisations(&self) -> StoreResult<Vec<Organisation>>;

    fn insert_key(&self, key: &ApiKey) -> StoreResult<()>;

    /// One organisation's keys, or everyone's; revoked ones included.
    fn keys(&self, organisation: Option<&str>) -> StoreResult<Vec<ApiKey>>;

    /// False when there is no such key.
    fn revoke_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::store::sqlite::SqliteStore;

    #[test]
    fn a_key_authenticates_its_organisation_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn KeyStore> = Arc::new(SqliteStore::in_memory().unwrap());
        let keyring = Keyring::open(dir.path(), store.clone()).unwrap();
        let issued = bootstrap(dir.path(), &keyring).unwrap().unwrap();
        assert_eq!(issued.len(), Role::ALL.len());
        assert!(bootstrap(dir.path(), &keyring).unwrap().is_none());
        let (role, key) = &issued[0];
        let caller = keyring
            .authenticate(Some(&format!("Bearer {key}")))
            .unwrap();
        assert_eq!(caller.organisation, DEMO_ORGANISATION);
        assert_eq!(caller.roles, [*role]);
        // The stored record holds no secret.
        let stored = store.keys(None).unwrap();
        assert!(stored.iter().all(|record| !key.contains(&record.hash)));
        // The last hex digit changed (to another one: a fixed digit is the same one time in 16).
        let last = if key.ends_with('0') { '1' } else { '0' };
        let tampered = format!("Bearer {}{last}", &key[..key.len() - 1]);
        assert_eq!(
            keyring.authenticate(Some(&tampered)),
            Err(AuthError::Invalid)
        );
        assert_eq!(keyring.authenticate(None), Err(AuthError::Missing));
        assert_eq!(
            keyring.authenticate(Some("Basic abc")),
            Err(AuthError::Missing)
        );
        assert_eq!(
            keyring.authenticate(Some("Bearer etp_nothing_here")),
            Err(AuthError::Invalid)
        );
        store.revoke_key(&caller.key_id, Utc::now()).unwrap();
        keyring.reload().unwrap();
        assert_eq!(
            keyring.authenticate(Some(&format!("Bearer {key}"))),
            Err(AuthError::Revoked)
        );
        // Another pepper (another installation) accepts none of these keys.
        let other = tempfile::tempdir().unwrap();
        let foreign = Keyring::open(other.path(), store.clone()).unwrap();
        assert_eq!(
            foreign.authenticate(Some(&format!("Bearer {}", issued[1].1))),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn an_admin_grants_only_its_own_roles_in_its_own_organisation_and_nobody_grants_operator() {
        let caller = |organisation: &str, roles: &[Role]| Caller {
            organisation: organisation.into(),
            key_id: "k".into(),
            roles: roles.to_vec(),
        };
        let admin = caller("demo", &[Role::Admin, Role::Carrier]);
        assert!(admin.manages_keys_of("demo"));
        assert!(!admin.manages_keys_of("other"));
        let granted: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|role| admin.may_grant(*role))
            .collect();
        assert_eq!(granted, [Role::Carrier, Role::Admin]);

        let operator = caller("demo", &[Role::Operator]);
        assert!(operator.manages_keys_of("other"));
        let granted: Vec<Role> = Role::ALL
            .into_iter()
            .filter(|role| operator.may_grant(*role))
            .collect();
        assert_eq!(
            granted,
            [Role::Carrier, Role::Dispatcher, Role::Partner, Role::Admin]
        );

        let carrier = caller("demo", &[Role::Carrier]);
        assert!(!carrier.manages_keys_of("demo"));
        assert!(Role::ALL.into_iter().all(|role| !carrier.may_grant(role)));
    }
}
