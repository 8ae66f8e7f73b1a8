//! Who may call: the bearer key of every `/v1` request, and the roles each route asks for.

use std::future::{ready, Ready};

use actix_web::{web, FromRequest, HttpRequest};

use crate::http::api::error::ApiError;
use crate::http::api::AppState;
use crate::partners::keys::{AuthError, Caller, Role};

/// The organisation's own fleet: carriers, and dispatchers who follow its trucks.
pub const FLEET: &[Role] = &[Role::Carrier, Role::Dispatcher];
/// Carriers alone: they register, change and feed what the fleet does.
pub const CARRIER: &[Role] = &[Role::Carrier];
/// Partners sharing their trips' history.
pub const PARTNER: &[Role] = &[Role::Partner];
/// The service's administrators, acting on every organisation.
pub const ADMIN: &[Role] = &[Role::Admin];
/// Whoever watches the operations panel: the fleet and the administrators. The order is the
/// one the 403 names them in.
pub const OPERATORS: &[Role] = &[Role::Dispatcher, Role::Carrier, Role::Admin];

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
}
