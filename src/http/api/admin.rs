//! Organisations and their API keys. An operator acts on every organisation; an organisation's
//! admin on its own keys alone.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::api::access::{KEY_MANAGERS, OPERATOR};
use crate::http::api::body::read_json;
use crate::http::api::dto::stamp;
use crate::http::api::error::{ApiError, ErrorBody};
use crate::http::api::{answer, found, listed, no_content, storage, AppState};
use crate::partners::keys::{AccessError, ApiKey, Caller, Organisation, Role};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrganisationRequest {
    /// 2 to 40 lowercase letters, digits and dashes.
    #[schema(example = "transports-martin")]
    pub id: String,
    #[schema(example = "Transports Martin")]
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct OrganisationDto {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRequest {
    #[schema(example = "TMS integration")]
    pub name: String,
    /// Among `carrier`, `dispatcher`, `partner`, `admin`: an admin grants only the roles its
    /// own key holds. `operator` is refused (403): the command line issues it.
    pub roles: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeyDto {
    pub id: String,
    pub organisation: String,
    pub name: String,
    pub roles: Vec<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
    /// The key itself, given once: in the answer to the creation only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl From<&Organisation> for OrganisationDto {
    fn from(organisation: &Organisation) -> Self {
        Self {
            id: organisation.id.clone(),
            name: organisation.name.clone(),
            created_at: stamp(organisation.created_at),
        }
    }
}

impl KeyDto {
    fn of(key: &ApiKey, shown: Option<String>) -> Self {
        Self {
            id: key.id.clone(),
            organisation: key.organisation.clone(),
            name: key.name.clone(),
            roles: key
                .roles
                .iter()
                .map(|role| role.as_str().to_owned())
                .collect(),
            created_at: stamp(key.created_at),
            revoked_at: key.revoked_at.map(stamp),
            key: shown,
        }
    }
}

/// Create an organisation.
#[utoipa::path(
    post,
    path = "/v1/organisations",
    tag = "admin",
    request_body = OrganisationRequest,
    responses(
        (status = 201, description = "Created", body = OrganisationDto),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 403, description = "Not an operator key", body = ErrorBody),
        (status = 409, description = "The id is taken", body = ErrorBody),
    )
)]
pub async fn create_organisation(
    state: web::Data<AppState>,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.allow(OPERATOR)?;
    let request: OrganisationRequest = read_json(payload, state.settings.max_body_bytes).await?;
    let now = state.clock.now();
    answer(state, StatusCode::CREATED, move |state| {
        let organisation = state
            .keyring
            .create_organisation(&request.id, &request.name, now)?;
        Ok(OrganisationDto::from(&organisation))
    })
    .await
}

impl From<AccessError> for ApiError {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::Invalid { field, message } => ApiError::OutOfRange { field, message },
            AccessError::Exists(_) => ApiError::Conflict {
                message: error.to_string(),
            },
            AccessError::UnknownOrganisation(_) => ApiError::NotFound,
            AccessError::Storage(error) => error.into(),
        }
    }
}

/// Every organisation.
#[utoipa::path(
    get,
    path = "/v1/organisations",
    tag = "admin",
    responses(
        (status = 200, description = "The organisations", body = Vec<OrganisationDto>),
        (status = 403, description = "Not an operator key", body = ErrorBody),
    )
)]
pub async fn list_organisations(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    caller.allow(OPERATOR)?;
    answer(state, StatusCode::OK, |state| {
        listed(state.store.organisations(), |organisation| {
            OrganisationDto::from(organisation)
        })
    })
    .await
}

/// Issue a key for an organisation: an operator for any, an admin for its own. The answer
/// holds the key, once.
#[utoipa::path(
    post,
    path = "/v1/organisations/{id}/keys",
    tag = "admin",
    request_body = KeyRequest,
    params(("id" = String, Path, description = "The organisation")),
    responses(
        (status = 201, description = "Issued, with the key", body = KeyDto),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 403, description = "Not an admin or operator key, or a role it may not grant (`roles`)", body = ErrorBody),
        (status = 404, description = "No such organisation, or another organisation's", body = ErrorBody),
    )
)]
pub async fn create_key(
    state: web::Data<AppState>,
    caller: Caller,
    organisation: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    caller.allow_keys_of(&organisation)?;
    let request: KeyRequest = read_json(payload, state.settings.max_body_bytes).await?;
    let roles = request
        .roles
        .iter()
        .enumerate()
        .map(|(index, text)| {
            Role::parse(text).ok_or_else(|| {
                ApiError::out_of_range(
                    &format!("roles[{index}]"),
                    "roles are carrier, dispatcher, partner, admin and operator",
                )
            })
        })
        .collect::<Result<Vec<Role>, ApiError>>()?;
    caller.allow_grant(&roles)?;
    answer(state, StatusCode::CREATED, move |state| {
        let (record, key) = state
            .keyring
            .create_key(&organisation, &request.name, &roles)?;
        Ok(KeyDto::of(&record, Some(key)))
    })
    .await
}

/// An organisation's keys, revoked ones included, never the keys themselves: an operator any
/// organisation's, an admin its own.
#[utoipa::path(
    get,
    path = "/v1/organisations/{id}/keys",
    tag = "admin",
    params(("id" = String, Path, description = "The organisation")),
    responses(
        (status = 200, description = "The keys", body = Vec<KeyDto>),
        (status = 403, description = "Not an admin or operator key", body = ErrorBody),
        (status = 404, description = "Another organisation's", body = ErrorBody),
    )
)]
pub async fn list_keys(
    state: web::Data<AppState>,
    caller: Caller,
    organisation: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.allow_keys_of(&organisation)?;
    answer(state, StatusCode::OK, move |state| {
        listed(state.store.keys(Some(&organisation)), |key| {
            KeyDto::of(key, None)
        })
    })
    .await
}

/// Revoke a key: it stops working at once. An operator revokes any key, an admin its own
/// organisation's but an operator's.
#[utoipa::path(
    delete,
    path = "/v1/keys/{id}",
    tag = "admin",
    params(("id" = String, Path, description = "The key's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "Not an admin or operator key, or an operator's key", body = ErrorBody),
        (status = 404, description = "No such key, or another organisation's", body = ErrorBody),
    )
)]
pub async fn revoke_key(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.allow(KEY_MANAGERS)?;
    let (store, keyring, now) = (
        state.store.clone(),
        state.keyring.clone(),
        state.clock.now(),
    );
    no_content(move || {
        let key = found(store.keys(None), |key| key.id == *id)?;
        caller.allow_revoke(&key)?;
        let revoked = store.revoke_key(&key.id, now).map_err(storage)?;
        keyring.reload().map_err(storage)?;
        revoked.then_some(()).ok_or(ApiError::NotFound)
    })
    .await
}
