//! Login (Register with version negotiation), users and personal access tokens.
//!
//! A failed login gets the same eviction whether the user does not exist, is
//! inactive or gave a wrong password; neither passwords nor tokens are logged.

use std::sync::Arc;

use bytes::BytesMut;
use iggy_binary_protocol::consensus::{EvictionReason, Operation};
use iggy_binary_protocol::requests::personal_access_tokens::CreatePersonalAccessTokenRequest;
use iggy_binary_protocol::requests::personal_access_tokens::DeletePersonalAccessTokenRequest;
use iggy_binary_protocol::requests::users::ChangePasswordRequest;
use iggy_binary_protocol::requests::users::CreateUserRequest;
use iggy_binary_protocol::requests::users::DeleteUserRequest;
use iggy_binary_protocol::requests::users::GetUserRequest;
use iggy_binary_protocol::requests::users::LoginRegisterRequest;
use iggy_binary_protocol::requests::users::LoginRegisterWithPatRequest;
use iggy_binary_protocol::responses::personal_access_tokens::RawPersonalAccessTokenResponse;
use iggy_binary_protocol::responses::personal_access_tokens::{
    GetPersonalAccessTokensResponse, PersonalAccessTokenResponse,
};
use iggy_binary_protocol::responses::users::{
    GetUsersResponse, LoginRegisterResponse, UserDetailsResponse, UserResponse,
};
use iggy_binary_protocol::{
    ClientVersionInfo, IGGY_PROTOCOL_VERSION, WireDecode, WireEncode, WireGlobalPermissions,
    WireIdentifier, WireName, WireOptions, WirePermissions, is_protocol_compatible,
};
use secrecy::{ExposeSecret, SecretString};

use super::dispatch::{Handled, Outcome, evict, seal_ok};
use super::error::Status;
use super::frame::{self, Eviction, RESULT_SECTION_OK, RequestHead};
use super::session::{Login, Session};
use super::system::server_version;
use super::{Shared, decode};
use crate::batch;
use crate::embedded::broker::{UserError, UserInfo, UserRef};

/// `UserStatus` codes of `iggy_common`.
const STATUS_ACTIVE: u8 = 1;
const STATUS_INACTIVE: u8 = 2;

/// Most Argon2 computations (logins, user creations, password changes) running at
/// once, process-wide. Each takes about 19 MiB while it runs: without a bound, a
/// storm of failed logins from many connections (no login needed to send one) made
/// memory grow by 19 MiB per concurrent attempt, up to the blocking pool's 512
/// threads. The others wait their turn (first come, first served).
const MAX_CONCURRENT_HASHES: usize = 4;
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_HASHES);

/// Runs a password hash or verification off the runtime's worker threads, at most
/// [`MAX_CONCURRENT_HASHES`] at once. `None` if the task panicked.
async fn hashing<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    // The semaphore is never closed: `acquire` cannot fail. The permit moves into
    // the blocking task, so it is held until the hash is done even if the caller
    // stops waiting.
    let permit = HASHING.acquire().await.ok();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .ok()
}

enum Credentials {
    Password {
        username: String,
        password: SecretString,
    },
    Token(SecretString),
}

/// Register (code 40 user/password, code 45 personal access token): checks the
/// protocol version, the credentials, and binds a new session to the connection.
pub(crate) async fn login(
    shared: &Arc<Shared>,
    session: &mut Session,
    head: &RequestHead,
    body: &[u8],
) -> Outcome {
    let Ok((version, prefix_len)) = ClientVersionInfo::decode(body) else {
        return evict(head, EvictionReason::MalformedLogin);
    };
    if !is_protocol_compatible(version.protocol_version) {
        tracing::info!(
            client = session.client_id,
            version = version.protocol_version,
            "login refused: incompatible protocol version"
        );
        return Outcome::Evict(Box::new(frame::eviction(
            head.client,
            Eviction::IncompatibleProtocol,
        )));
    }
    let tail = body.get(prefix_len..).unwrap_or_default();
    let credentials = match LoginRegisterRequest::decode_after_prefix(version.clone(), tail) {
        Ok((request, used)) if used == tail.len() => Credentials::Password {
            username: request.username.as_str().to_owned(),
            password: request.password,
        },
        _ => match LoginRegisterWithPatRequest::decode_after_prefix(version, tail) {
            Ok((request, used)) if used == tail.len() => Credentials::Token(request.token),
            _ => return evict(head, EvictionReason::MalformedLogin),
        },
    };
    let is_token = matches!(credentials, Credentials::Token(_));
    let users = Arc::clone(&shared.users);
    // Argon2 is slow on purpose: keep it off the runtime's worker threads.
    let user_id = hashing(move || match credentials {
        Credentials::Password { username, password } => {
            users.verify_password(&username, password.expose_secret())
        }
        Credentials::Token(token) => users.verify_token(token.expose_secret()),
    })
    .await
    .flatten();
    let Some(user_id) = user_id else {
        tracing::info!(client = session.client_id, peer = %session.address, "login refused: invalid credentials");
        return evict(
            head,
            if is_token {
                EvictionReason::InvalidToken
            } else {
                EvictionReason::InvalidCredentials
            },
        );
    };
    let login = Login {
        user_id,
        session: shared.next_session(),
        vsr_client: head.client,
    };
    session.bind(login);
    tracing::debug!(client = session.client_id, user_id, "logged in");
    let mut out = frame::reply_buffer(64);
    out.extend_from_slice(&RESULT_SECTION_OK);
    let Ok(server_version) = WireName::new(server_version()) else {
        return Outcome::Reply(frame::error_reply(
            head,
            Operation::Register,
            Status::ERROR.0,
        ));
    };
    LoginRegisterResponse {
        user_id,
        session: login.session,
        server_protocol_version: IGGY_PROTOCOL_VERSION,
        server_version,
    }
    .encode(&mut out);
    seal_ok(shared, &mut out, head, Operation::Register);
    Outcome::Reply(out)
}

impl From<UserError> for Status {
    fn from(e: UserError) -> Self {
        match e {
            UserError::NotFound => Self::RESOURCE_NOT_FOUND,
            UserError::AlreadyExists => Self::USER_ALREADY_EXISTS,
            UserError::InvalidUsername => Self::INVALID_USERNAME,
            UserError::InvalidPassword => Self::INVALID_PASSWORD,
            UserError::Root => Self::CANNOT_DELETE_USER,
            UserError::InvalidCredentials => Self::INVALID_CREDENTIALS,
            UserError::TokenExists => Self::PAT_ALREADY_EXISTS,
            UserError::InvalidTokenName | UserError::TokenNotFound => Self::INVALID_PAT_NAME,
            UserError::TooManyTokens => Self::PAT_LIMIT_REACHED,
            UserError::Hash(_) | UserError::Storage(_) => {
                tracing::error!(error = %crate::error_chain(&e), "user store failed");
                Self::ERROR
            }
        }
    }
}

fn user_ref(id: &WireIdentifier) -> UserRef<'_> {
    match id {
        WireIdentifier::Numeric(n) => UserRef::Id(*n),
        WireIdentifier::String(name) => UserRef::Name(name.as_str()),
    }
}

fn user_response(user: &UserInfo) -> Result<UserResponse, Status> {
    Ok(UserResponse {
        id: user.id,
        created_at: user.created_at,
        status: if user.active {
            STATUS_ACTIVE
        } else {
            STATUS_INACTIVE
        },
        username: WireName::new(user.username.as_str()).map_err(|_| Status::ERROR)?,
        options: WireOptions::empty(),
    })
}

/// Every user may do everything (the embedded broker has no per-stream
/// permissions); the reply says so.
fn all_permissions() -> WirePermissions {
    WirePermissions {
        global: WireGlobalPermissions {
            manage_servers: true,
            read_servers: true,
            manage_users: true,
            read_users: true,
            manage_streams: true,
            read_streams: true,
            manage_topics: true,
            read_topics: true,
            poll_messages: true,
            send_messages: true,
        },
        streams: Vec::new(),
    }
}

fn details(user: &UserInfo) -> Result<UserDetailsResponse, Status> {
    Ok(UserDetailsResponse {
        user: user_response(user)?,
        permissions: Some(all_permissions()),
    })
}

/// An unknown user is an empty body.
pub(crate) fn get(shared: &Shared, body: &[u8], out: &mut BytesMut) -> Handled {
    let request: GetUserRequest = decode(body)?;
    if let Some(user) = shared.users.user(user_ref(&request.user_id)) {
        details(&user)?.encode(out);
    }
    Ok(())
}

pub(crate) fn list(shared: &Shared, out: &mut BytesMut) -> Handled {
    GetUsersResponse {
        users: shared
            .users
            .list()
            .iter()
            .map(user_response)
            .collect::<Result<_, _>>()?,
    }
    .encode(out);
    Ok(())
}

pub(crate) async fn create(shared: &Shared, body: &[u8], out: &mut BytesMut) -> Handled {
    let request: CreateUserRequest = decode(body)?;
    let active = match request.status {
        STATUS_ACTIVE => true,
        STATUS_INACTIVE => false,
        _ => return Err(Status::INVALID_USER_STATUS),
    };
    let users = Arc::clone(&shared.users);
    let username = request.username.as_str().to_owned();
    let password = SecretString::from(request.password);
    let user = hashing(move || users.create(&username, password.expose_secret(), active))
        .await
        .ok_or(Status::ERROR)??;
    details(&user)?.encode(out);
    Ok(())
}

pub(crate) fn delete(shared: &Shared, body: &[u8]) -> Handled {
    let request: DeleteUserRequest = decode(body)?;
    Ok(shared.users.delete(user_ref(&request.user_id))?)
}

pub(crate) async fn change_password(shared: &Shared, session: &Session, body: &[u8]) -> Handled {
    let request: ChangePasswordRequest = decode(body)?;
    let users = Arc::clone(&shared.users);
    let target = match &request.user_id {
        WireIdentifier::Numeric(n) => users.user(UserRef::Id(*n)),
        WireIdentifier::String(name) => users.user(UserRef::Name(name.as_str())),
    }
    .ok_or(Status::RESOURCE_NOT_FOUND)?;
    tracing::debug!(
        client = session.client_id,
        user = target.id,
        "changing a password"
    );
    let current = SecretString::from(request.current_password);
    let new = SecretString::from(request.new_password);
    hashing(move || {
        users.change_password(
            UserRef::Id(target.id),
            current.expose_secret(),
            new.expose_secret(),
        )
    })
    .await
    .ok_or(Status::ERROR)??;
    Ok(())
}

fn logged_in(session: &Session) -> Result<u32, Status> {
    session.user_id().ok_or(Status::UNAUTHENTICATED)
}

pub(crate) fn tokens(shared: &Shared, session: &Session, out: &mut BytesMut) -> Handled {
    let user_id = logged_in(session)?;
    GetPersonalAccessTokensResponse {
        tokens: shared
            .users
            .tokens(user_id)
            .into_iter()
            .map(|t| {
                Ok(PersonalAccessTokenResponse {
                    name: WireName::new(t.name).map_err(|_| Status::ERROR)?,
                    expiry_at: t.expiry_at.unwrap_or(0),
                })
            })
            .collect::<Result<_, Status>>()?,
    }
    .encode(out);
    Ok(())
}

/// `expiry` is a lifetime in µs; 0 (server default) and `u64::MAX` never expire.
pub(crate) fn create_token(
    shared: &Shared,
    session: &Session,
    body: &[u8],
    out: &mut BytesMut,
) -> Handled {
    let user_id = logged_in(session)?;
    let request: CreatePersonalAccessTokenRequest = decode(body)?;
    let expiry_at = match request.expiry {
        0 | u64::MAX => None,
        lifetime => Some(batch::now_micros().saturating_add(lifetime)),
    };
    let token = shared
        .users
        .create_token(user_id, request.name.as_str(), expiry_at)?;
    RawPersonalAccessTokenResponse {
        token: WireName::new(token).map_err(|_| Status::ERROR)?,
    }
    .encode(out);
    Ok(())
}

pub(crate) fn delete_token(shared: &Shared, session: &Session, body: &[u8]) -> Handled {
    let user_id = logged_in(session)?;
    let request: DeletePersonalAccessTokenRequest = decode(body)?;
    Ok(shared.users.delete_token(user_id, request.name.as_str())?)
}
