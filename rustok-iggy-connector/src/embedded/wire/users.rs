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
use iggy_binary_protocol::requests::users::UpdatePermissionsRequest;
use iggy_binary_protocol::requests::users::UpdateUserRequest;
use iggy_binary_protocol::responses::personal_access_tokens::RawPersonalAccessTokenResponse;
use iggy_binary_protocol::responses::personal_access_tokens::{
    GetPersonalAccessTokensResponse, PersonalAccessTokenResponse,
};
use iggy_binary_protocol::responses::users::{
    GetUsersResponse, LoginRegisterResponse, UserDetailsResponse, UserResponse,
};
use iggy_binary_protocol::{
    ClientVersionInfo, IGGY_PROTOCOL_VERSION, WireDecode, WireEncode, WireGlobalPermissions,
    WireIdentifier, WireName, WireOptions, WirePermissions, WireStreamPermissions,
    WireTopicPermissions, is_protocol_compatible,
};
use secrecy::{ExposeSecret, SecretString};

use super::frame::{self, Eviction, RESULT_SECTION_OK, RequestHead};
use super::lookup::decode;
use super::reply::{Handled, Outcome, evict, seal_ok, server_version};
use super::session::{Login, Session};
use super::shared::Shared;
use crate::batch;
use crate::embedded::broker::{
    GlobalPermissions, Permissions, StreamPermissions, TopicPermissions, UserError, UserInfo,
    UserRef,
};
use crate::error_codes::ErrorCode;

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
///
/// The check waits its turn in the listener's login queue; a login refused because
/// the queue is full closes the connection without an answer, and the connection
/// is closed after its `max_failed_logins`-th failed login (the eviction is sent
/// first).
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
    // Wait for a turn in the listener's login queue (fair between addresses).
    let Ok(slot) = shared.logins.enter(session.address.ip()).await else {
        tracing::info!(client = session.client_id, peer = %session.address, "login refused: the login queue is full");
        return Outcome::Close;
    };
    let users = Arc::clone(&shared.users);
    shared.set_checking_password(session.client_id, true);
    // Argon2 is slow on purpose: keep it off the runtime's worker threads.
    let grant = hashing(move || match credentials {
        Credentials::Password { username, password } => {
            users.verify_password(&username, password.expose_secret())
        }
        Credentials::Token(token) => users.verify_token(token.expose_secret()),
    })
    .await
    .flatten();
    drop(slot);
    let Some(grant) = grant else {
        shared.set_checking_password(session.client_id, false);
        session.failed_logins += 1;
        if session.failed_logins >= shared.limits.max_failed_logins {
            // No more guesses on this connection.
            session.close_after_reply = true;
        }
        tracing::info!(client = session.client_id, peer = %session.address, failures = session.failed_logins, "login refused: invalid credentials");
        return evict(
            head,
            if is_token {
                EvictionReason::InvalidToken
            } else {
                EvictionReason::InvalidCredentials
            },
        );
    };
    let user_id = grant.user_id;
    let login = Login {
        grant,
        session: shared.next_session(),
        vsr_client: head.client,
    };
    let session_number = login.session;
    session.bind(login);
    // Only now: between the check and the login, the connection must not be chosen
    // to make room for a new one.
    shared.set_checking_password(session.client_id, false);
    tracing::debug!(client = session.client_id, user_id, "logged in");
    let mut out = frame::reply_buffer(64);
    out.extend_from_slice(&RESULT_SECTION_OK);
    let Ok(server_version) = WireName::new(server_version()) else {
        return Outcome::Reply(frame::error_reply(
            head,
            Operation::Register,
            ErrorCode::ERROR.0,
        ));
    };
    LoginRegisterResponse {
        user_id,
        session: session_number,
        server_protocol_version: IGGY_PROTOCOL_VERSION,
        server_version,
    }
    .encode(&mut out);
    seal_ok(shared, &mut out, head, Operation::Register);
    Outcome::Reply(out)
}

impl From<UserError> for ErrorCode {
    fn from(e: UserError) -> Self {
        match e {
            UserError::NotFound => Self::RESOURCE_NOT_FOUND,
            UserError::AlreadyExists => Self::USER_ALREADY_EXISTS,
            UserError::InvalidUsername => Self::INVALID_USERNAME,
            UserError::InvalidPassword => Self::INVALID_PASSWORD,
            UserError::Root => Self::CANNOT_DELETE_USER,
            UserError::RootPermissions => Self::CANNOT_CHANGE_PERMISSIONS,
            UserError::InvalidCredentials => Self::INVALID_CREDENTIALS,
            UserError::TokenExists => Self::PERSONAL_ACCESS_TOKEN_ALREADY_EXISTS,
            UserError::InvalidTokenName | UserError::TokenNotFound => {
                Self::INVALID_PERSONAL_ACCESS_TOKEN_NAME
            }
            UserError::TooManyTokens => Self::PERSONAL_ACCESS_TOKENS_LIMIT_REACHED,
            UserError::Hash(_) | UserError::Storage(_) | UserError::NewerFormat { .. } => {
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

fn user_response(user: &UserInfo) -> Result<UserResponse, ErrorCode> {
    Ok(UserResponse {
        id: user.id,
        created_at: user.created_at,
        status: if user.active {
            STATUS_ACTIVE
        } else {
            STATUS_INACTIVE
        },
        username: WireName::new(user.username.as_str()).map_err(|_| ErrorCode::ERROR)?,
        options: WireOptions::empty(),
    })
}

/// Permissions as the wire carries them.
fn wire_permissions(p: &Permissions) -> WirePermissions {
    let g = &p.global;
    WirePermissions {
        global: WireGlobalPermissions {
            manage_servers: g.manage_servers,
            read_servers: g.read_servers,
            manage_users: g.manage_users,
            read_users: g.read_users,
            manage_streams: g.manage_streams,
            read_streams: g.read_streams,
            manage_topics: g.manage_topics,
            read_topics: g.read_topics,
            poll_messages: g.poll_messages,
            send_messages: g.send_messages,
        },
        streams: p
            .streams
            .iter()
            .map(|(&stream_id, s)| WireStreamPermissions {
                stream_id,
                manage_stream: s.manage_stream,
                read_stream: s.read_stream,
                manage_topics: s.manage_topics,
                read_topics: s.read_topics,
                poll_messages: s.poll_messages,
                send_messages: s.send_messages,
                topics: s
                    .topics
                    .iter()
                    .map(|(&topic_id, t)| WireTopicPermissions {
                        topic_id,
                        manage_topic: t.manage_topic,
                        read_topic: t.read_topic,
                        poll_messages: t.poll_messages,
                        send_messages: t.send_messages,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Permissions from the wire. A stream or topic listed twice keeps its last grant.
fn stored_permissions(p: &WirePermissions) -> Permissions {
    let g = &p.global;
    Permissions {
        global: GlobalPermissions {
            manage_servers: g.manage_servers,
            read_servers: g.read_servers,
            manage_users: g.manage_users,
            read_users: g.read_users,
            manage_streams: g.manage_streams,
            read_streams: g.read_streams,
            manage_topics: g.manage_topics,
            read_topics: g.read_topics,
            poll_messages: g.poll_messages,
            send_messages: g.send_messages,
        },
        streams: p
            .streams
            .iter()
            .map(|s| {
                let topics = s
                    .topics
                    .iter()
                    .map(|t| {
                        let grant = TopicPermissions {
                            manage_topic: t.manage_topic,
                            read_topic: t.read_topic,
                            poll_messages: t.poll_messages,
                            send_messages: t.send_messages,
                        };
                        (t.topic_id, grant)
                    })
                    .collect();
                let grant = StreamPermissions {
                    manage_stream: s.manage_stream,
                    read_stream: s.read_stream,
                    manage_topics: s.manage_topics,
                    read_topics: s.read_topics,
                    poll_messages: s.poll_messages,
                    send_messages: s.send_messages,
                    topics,
                };
                (s.stream_id, grant)
            })
            .collect(),
    }
}

fn details(user: &UserInfo) -> Result<UserDetailsResponse, ErrorCode> {
    Ok(UserDetailsResponse {
        user: user_response(user)?,
        permissions: user.permissions.as_ref().map(wire_permissions),
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
        _ => return Err(ErrorCode::INVALID_USER_STATUS),
    };
    check_no_options(&request.options)?;
    let users = Arc::clone(&shared.users);
    let username = request.username.as_str().to_owned();
    let password = SecretString::from(request.password);
    let permissions = request.permissions.as_ref().map(stored_permissions);
    let user =
        hashing(move || users.create(&username, password.expose_secret(), active, permissions))
            .await
            .ok_or(ErrorCode::ERROR)??;
    details(&user)?.encode(out);
    Ok(())
}

/// Deletes a user and its tokens; its sessions end at once.
pub(crate) fn delete(shared: &Shared, body: &[u8]) -> Handled {
    let request: DeleteUserRequest = decode(body)?;
    let id = shared.users.delete(user_ref(&request.user_id))?;
    shared.recheck_user(id);
    Ok(())
}

/// Renames a user and/or sets its status (options are not stored). Deactivating
/// ends the user's sessions at once.
pub(crate) fn update(shared: &Shared, body: &[u8]) -> Handled {
    let request: UpdateUserRequest = decode(body)?;
    check_no_options(&request.options)?;
    let active = match request.status {
        None => None,
        Some(STATUS_ACTIVE) => Some(true),
        Some(STATUS_INACTIVE) => Some(false),
        Some(_) => return Err(ErrorCode::INVALID_USER_STATUS),
    };
    let user = shared.users.update(
        user_ref(&request.user_id),
        request.username.as_ref().map(WireName::as_str),
        active,
    )?;
    shared.recheck_user(user.id);
    Ok(())
}

/// Replaces a user's permissions; they apply to the user's open sessions from
/// their next request. The root user's cannot be changed (`CannotChangePermissions`).
pub(crate) fn update_permissions(shared: &Shared, body: &[u8]) -> Handled {
    let request: UpdatePermissionsRequest = decode(body)?;
    shared.users.update_permissions(
        user_ref(&request.user_id),
        request.permissions.as_ref().map(stored_permissions),
    )?;
    Ok(())
}

/// Users have no option keys (the Iggy server's catalog for users is empty): any key
/// is `UnsupportedOptionKey`.
fn check_no_options(options: &WireOptions) -> Handled {
    if options.iter().next().is_some() {
        return Err(ErrorCode::UNSUPPORTED_OPTION_KEY);
    }
    Ok(())
}

/// Changes a password: every session of the user ends and its tokens are deleted,
/// except that the session making the change keeps its rights.
pub(crate) async fn change_password(
    shared: &Shared,
    session: &mut Session,
    body: &[u8],
) -> Handled {
    let request: ChangePasswordRequest = decode(body)?;
    let users = Arc::clone(&shared.users);
    let target = match &request.user_id {
        WireIdentifier::Numeric(n) => users.user(UserRef::Id(*n)),
        WireIdentifier::String(name) => users.user(UserRef::Name(name.as_str())),
    }
    .ok_or(ErrorCode::RESOURCE_NOT_FOUND)?;
    tracing::debug!(
        client = session.client_id,
        user = target.id,
        "changing a password"
    );
    let current = SecretString::from(request.current_password);
    let new = SecretString::from(request.new_password);
    let grant = hashing(move || {
        users.change_password(
            UserRef::Id(target.id),
            current.expose_secret(),
            new.expose_secret(),
        )
    })
    .await
    .ok_or(ErrorCode::ERROR)??;
    session.regrant(grant);
    shared.recheck_user(target.id);
    Ok(())
}

fn logged_in(session: &Session) -> Result<u32, ErrorCode> {
    session.user_id().ok_or(ErrorCode::UNAUTHENTICATED)
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
                    name: WireName::new(t.name).map_err(|_| ErrorCode::ERROR)?,
                    expiry_at: t.expiry_at.unwrap_or(0),
                })
            })
            .collect::<Result<_, ErrorCode>>()?,
    }
    .encode(out);
    Ok(())
}

/// `expiry` is a lifetime in µs; 0 (server default) and `u64::MAX` never expire.
pub(crate) async fn create_token(
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
    let users = Arc::clone(&shared.users);
    let name = request.name.as_str().to_owned();
    // The root user's first token binds them to the root credentials (Argon2).
    let token = hashing(move || users.create_token(user_id, &name, expiry_at))
        .await
        .ok_or(ErrorCode::ERROR)??;
    RawPersonalAccessTokenResponse {
        token: WireName::new(token).map_err(|_| ErrorCode::ERROR)?,
    }
    .encode(out);
    Ok(())
}

/// Deletes a token of the caller; the sessions that logged in with it end at once.
pub(crate) fn delete_token(shared: &Shared, session: &Session, body: &[u8]) -> Handled {
    let user_id = logged_in(session)?;
    let request: DeletePersonalAccessTokenRequest = decode(body)?;
    shared.users.delete_token(user_id, request.name.as_str())?;
    shared.recheck_user(user_id);
    Ok(())
}
