//! Who may call: the bearer key of every `/v1` request, and the roles each route asks for.

use std::future::{ready, Ready};

use actix_web::{web, FromRequest, HttpRequest};

use crate::http::api::error::ApiError;
use crate::http::api::AppState;
use crate::partners::keys::{ApiKey, AuthError, Caller, Role};

/// The organisation's own fleet: carriers, and dispatchers who follow its trucks.
pub const FLEET: &[Role] = &[Role::Carrier, Role::Dispatcher];
/// Carriers alone: they register, change and feed what the fleet does.
pub const CARRIER: &[Role] = &[Role::Carrier];
/// Partners sharing their trips' history.
pub const PARTNER: &[Role] = &[Role::Partner];
/// The installation's operators: organisations, training and the served model, for every
/// organisation at once.
pub const OPERATOR: &[Role] = &[Role::Operator];
/// Who manages keys: an organisation's admins its own, the operators every organisation's.
pub const KEY_MANAGERS: &[Role] = &[Role::Admin, Role::Operator];
/// Who subscribes the organisation's systems to its events: its carriers and its admins.
pub const WEBHOOKS: &[Role] = &[Role::Carrier, Role::Admin];
/// Who gives the organisation's phones their device tokens, and takes them back.
pub const DEVICES: &[Role] = &[Role::Carrier, Role::Admin];
/// Whoever watches the operations panel: the fleet and the organisation's admins. The order
/// is the one the 403 names them in.
pub const PANEL: &[Role] = &[Role::Dispatcher, Role::Carrier, Role::Admin];

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let Some(state) = request.app_data::<web::Data<AppState>>() else {
            return ready(Err(ApiError::Internal("no application state".into())));
        };
        let header = request
            .headers()
            .get("authorization")
            .and_then(|value| value.to_str().ok());
        let caller = state
            .keyring
            .authenticate(header)
            .map_err(|error| ApiError::Unauthorized {
                message: error.to_string(),
                missing: error == AuthError::Missing,
            })
            .and_then(|caller| {
                state.rate_limits.check(&caller.key_id)?;
                Ok(caller)
            });
        ready(caller)
    }
}

impl Caller {
    /// The caller's organisation, when it holds one of `roles`.
    pub fn allow(&self, roles: &[Role]) -> Result<String, ApiError> {
        if roles.iter().any(|role| self.has(*role)) {
            return Ok(self.organisation.clone());
        }
        Err(ApiError::Forbidden {
            field: String::new(),
            message: format!(
                "this needs a key with the role {}",
                roles
                    .iter()
                    .map(|role| role.as_str())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        })
    }

    /// Checks that the caller manages `organisation`'s keys. Another organisation's keys
    /// answer 404, as its shipments do: an admin learns nothing of who else is served.
    pub fn allow_keys_of(&self, organisation: &str) -> Result<(), ApiError> {
        self.allow(KEY_MANAGERS)?;
        if !self.manages_keys_of(organisation) {
            return Err(ApiError::NotFound);
        }
        Ok(())
    }

    /// Checks every role a key the caller issues is to carry.
    pub fn allow_grant(&self, roles: &[Role]) -> Result<(), ApiError> {
        let message = match roles.iter().find(|role| !self.may_grant(**role)) {
            None => return Ok(()),
            Some(Role::Operator) => {
                "operator keys are issued on the command line (etape keys create --role \
                 operator), never through the API"
                    .to_owned()
            }
            Some(role) => format!(
                "this key cannot grant the role {}: a key grants only the roles it holds",
                role.as_str()
            ),
        };
        Err(ApiError::Forbidden {
            field: "roles".into(),
            message,
        })
    }

    /// Checks that the caller may revoke `key`. An organisation's admin cannot take the
    /// installation's operator key away, even one kept under its organisation.
    pub fn allow_revoke(&self, key: &ApiKey) -> Result<(), ApiError> {
        self.allow_keys_of(&key.organisation)?;
        if key.roles.contains(&Role::Operator) && !self.has(Role::Operator) {
            return Err(ApiError::Forbidden {
                field: String::new(),
                message: "an operator key is revoked by an operator".into(),
            });
        }
        Ok(())
    }
}
