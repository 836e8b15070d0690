//! Users of the TCP listener: the root user from the configuration, users created
//! over the wire, and personal access tokens.
//!
//! Storage of secrets:
//! - The **root user** (id 0) always follows `embedded.root_username` /
//!   `embedded.root_password`; its password is not written to disk (the
//!   configuration holds it already), except as the Argon2id hash its personal
//!   access tokens are bound to (below). Logins compare a SHA-256 digest keyed with
//!   a random per-process key, in constant time.
//! - **Created users** are persisted in `users.json` in the data directory with an
//!   **Argon2id** hash (the `argon2` crate with its default, OWASP-recommended
//!   parameters: 19 MiB, 2 passes, a random 16-byte salt per password, PHC string
//!   format). Hashing is deliberately slow: call the verifying methods off the
//!   async runtime (`spawn_blocking`).
//! - **Personal access tokens** are 256-bit random strings; only their SHA-256
//!   is stored (a fast hash is right for high-entropy secrets, as Iggy does with
//!   BLAKE3).
//!
//! Permissions (Iggy's model, [`super::permissions`]) are stored with each created
//! user, set by `CreateUser` and `UpdatePermissions`; the root user holds every
//! permission, and they cannot be changed. Files of format 1 (written before
//! permissions were stored) are migrated when opened: their users keep the full
//! rights they had.
//!
//! Revocation: a login yields a [`Grant`], which the listener checks again
//! ([`Users::current_user`]) before every request of the session. A grant stops
//! being current when its user is deleted or deactivated, when the user's password
//! changes, or when the token it was obtained with is deleted. A password change
//! also deletes the user's tokens (a password change is a credential rotation:
//! tokens minted with the old password go with it). The root user's tokens are bound
//! to the root credentials they were created under: when the broker opens with a
//! different root user name or password, they are deleted.
//!
//! Nothing here logs a password or a token.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::password_hash::{PasswordHasher, generate_salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::permissions::Permissions;
use super::persist;
use crate::batch;
use crate::embedded::StorageError;

pub(super) const USERS_FILE: &str = "users.json";
/// Format 2 stores permissions with each user; format 1 files (no permissions, every
/// user had every right) are migrated at open.
const FORMAT_VERSION: u32 = 2;
/// The last format whose users had every permission.
const FORMAT_WITHOUT_PERMISSIONS: u32 = 1;
/// Id of the root user.
pub(crate) const ROOT_USER_ID: u32 = 0;
/// Length limits of user names and passwords (those of Iggy).
pub(crate) const USERNAME_LENGTH: std::ops::RangeInclusive<usize> = 3..=50;
/// Length limits of passwords.
pub(crate) const PASSWORD_LENGTH: std::ops::RangeInclusive<usize> = 3..=100;
/// Most tokens one user may hold.
const MAX_TOKENS_PER_USER: usize = 100;

/// Why a user operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UserError {
    #[error("no such user")]
    NotFound,
    #[error("a user with that name already exists")]
    AlreadyExists,
    #[error("user names are 3 to 50 characters")]
    InvalidUsername,
    #[error("passwords are 3 to 100 characters")]
    InvalidPassword,
    #[error(
        "the root user cannot be deleted or changed over the wire (it follows the configuration)"
    )]
    Root,
    #[error("the root user's permissions cannot be changed")]
    RootPermissions,
    #[error("{path} has users format {format}; this version reads formats up to {FORMAT_VERSION}")]
    NewerFormat { path: PathBuf, format: u32 },
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("a token with that name already exists")]
    TokenExists,
    #[error("token names are 3 to 30 characters")]
    InvalidTokenName,
    #[error("too many tokens")]
    TooManyTokens,
    #[error("no such token")]
    TokenNotFound,
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Who a request names.
#[derive(Debug, Clone, Copy)]
pub(crate) enum UserRef<'a> {
    Id(u32),
    Name(&'a str),
}

/// A user as the wire shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserInfo {
    pub(crate) id: u32,
    pub(crate) username: String,
    pub(crate) created_at: u64,
    pub(crate) active: bool,
    /// What the user may do; `None` is no permission at all.
    pub(crate) permissions: Option<Permissions>,
}

/// A token as the wire shows it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenInfo {
    pub(crate) name: String,
    /// Expiry in µs since the epoch; `None` never expires.
    pub(crate) expiry_at: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct UsersFile {
    format: u32,
    next_id: u32,
    users: Vec<StoredUser>,
    tokens: Vec<StoredToken>,
    /// The root credentials the root user's tokens were created under. Absent in
    /// files of earlier versions: their root tokens are bound to the credentials of
    /// the first start that reads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    root_binding: Option<RootBinding>,
    /// Whether `root_binding` is known to match the configured root credentials
    /// (checked at open when there are root tokens, or set when one is created).
    #[serde(skip)]
    root_binding_current: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RootBinding {
    username: String,
    /// Argon2id PHC string of the root password.
    password_hash: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredUser {
    id: u32,
    username: String,
    /// Argon2id PHC string.
    password_hash: String,
    active: bool,
    created_at: u64,
    /// What the user may do; `None` (or absent) is no permission at all. Format 1
    /// files had no such field: their users are given every permission at open.
    #[serde(default)]
    permissions: Option<Permissions>,
    /// Bumped whenever the user's credentials or status change: grants of an
    /// earlier epoch are no longer current. In memory only (no session survives a
    /// restart).
    #[serde(skip)]
    epoch: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredToken {
    user_id: u32,
    name: String,
    /// Hex SHA-256 of the token.
    token_hash: String,
    expiry_at: Option<u64>,
}

struct Root {
    username: String,
    key: [u8; 32],
    digest: [u8; 32],
    /// Kept to bind the first root token to these credentials.
    password: SecretString,
    created_at: u64,
}

/// What a successful login grants the session, checked again before each of its
/// requests ([`Users::current_user`]).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    pub(crate) user_id: u32,
    /// The user's epoch at login.
    epoch: u64,
    /// Digest of the personal access token the session logged in with.
    token: Option<String>,
}

impl Grant {
    /// Whether the session logged in with a personal access token.
    pub(crate) fn by_token(&self) -> bool {
        self.token.is_some()
    }
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("user_id", &self.user_id)
            .field("epoch", &self.epoch)
            .field("by_token", &self.by_token())
            .finish()
    }
}

/// The user store of one broker.
pub(crate) struct Users {
    path: PathBuf,
    root: Root,
    state: RwLock<UsersFile>,
    dummy_hash: OnceLock<String>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users")
            .field("root", &self.root.username)
            .finish_non_exhaustive()
    }
}

fn keyed_digest(key: &[u8; 32], secret: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(key);
    hasher.update(secret);
    hasher.finalize().into()
}

fn token_digest(token: &str) -> String {
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    hex(&digest)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Equality that takes the same time wherever the first difference is.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    let (a, b) = key.split_at_mut(16);
    a.copy_from_slice(&generate_salt());
    b.copy_from_slice(&generate_salt());
    key
}

fn hash_password(password: &str) -> Result<String, UserError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// Argon2 working memory kept from one verification to the next: 19 MiB each with
/// the default parameters, at most [`KEPT_WORK_MEMORY`] kept.
///
/// Letting Argon2 allocate its own memory for every verification made the
/// process grow by about 19 MiB per failed login under a storm of them (the
/// allocator does not reuse those 64-byte-aligned blocks well across threads),
/// even with few verifications at once; reused buffers keep memory flat.
static WORK_MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());
/// As many buffers as the listener runs verifications at once.
const KEPT_WORK_MEMORY: usize = 4;

/// Runs `f` on `blocks` zeroed Argon2 blocks taken from [`WORK_MEMORY`].
fn with_work_memory<R>(blocks: usize, f: impl FnOnce(&mut [Block]) -> R) -> Option<R> {
    let mut memory = WORK_MEMORY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .pop()
        .unwrap_or_default();
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    let result = memory.get_mut(..blocks).map(f);
    // Nothing derived from a password stays in memory.
    memory.fill(Block::new());
    let mut kept = WORK_MEMORY.lock().unwrap_or_else(PoisonError::into_inner);
    if kept.len() < KEPT_WORK_MEMORY {
        kept.push(memory);
    }
    result
}

/// Whether `password` matches the PHC string `phc` (what
/// `PasswordVerifier::verify_password` does, with reused working memory).
fn verify_hash(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else {
        return false;
    };
    let Ok(version) = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from)
    else {
        return false;
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    let argon2 = Argon2::new(algorithm, version, params);
    let mut buffer = [0u8; Output::MAX_LENGTH];
    let Some(out) = buffer.get_mut(..expected.len()) else {
        return false;
    };
    let hashed = with_work_memory(argon2.params().block_count(), |memory| {
        argon2
            .hash_password_into_with_memory(password.as_bytes(), salt.as_ref(), out, memory)
            .is_ok()
    });
    // `Output` compares in constant time.
    hashed == Some(true) && Output::new(out).is_ok_and(|computed| computed == *expected)
}

/// Checks the length limits of Iggy for a user name.
pub(crate) fn validate_username(username: &str) -> Result<(), UserError> {
    let len = username.chars().count();
    if USERNAME_LENGTH.contains(&len) && !username.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(UserError::InvalidUsername)
    }
}

/// Checks the length limits of Iggy for a password.
pub(crate) fn validate_password(password: &str) -> Result<(), UserError> {
    if PASSWORD_LENGTH.contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(UserError::InvalidPassword)
    }
}

impl Users {
    /// Opens the store in `data_dir` with the root user's credentials.
    ///
    /// When the file holds tokens of the root user, this checks that the root
    /// credentials are those the tokens were created under (one Argon2
    /// verification: call it off the async runtime) and deletes the tokens if not.
    pub(crate) fn open(
        data_dir: &Path,
        root_username: &str,
        root_password: &str,
    ) -> Result<Self, UserError> {
        let path = data_dir.join(USERS_FILE);
        let stored: Option<UsersFile> = persist::read_json(&path)?;
        let existed = stored.is_some();
        let mut state = stored.unwrap_or_default();
        if state.format > FORMAT_VERSION {
            return Err(UserError::NewerFormat {
                path,
                format: state.format,
            });
        }
        // Users of earlier formats had every permission: they keep it.
        let migrate = existed && state.format <= FORMAT_WITHOUT_PERMISSIONS;
        if migrate {
            for user in &mut state.users {
                user.permissions = Some(Permissions::all());
            }
        }
        state.format = FORMAT_VERSION;
        state.next_id = state.next_id.max(ROOT_USER_ID + 1);
        let key = random_key();
        let users = Self {
            path,
            root: Root {
                username: root_username.to_owned(),
                key,
                digest: keyed_digest(&key, root_password.as_bytes()),
                password: SecretString::from(root_password),
                created_at: batch::now_micros(),
            },
            state: RwLock::new(state),
            dummy_hash: OnceLock::new(),
        };
        if migrate {
            let state = users.read();
            users.save(&state)?;
            tracing::info!(
                users = state.users.len(),
                "users.json migrated to format {FORMAT_VERSION}: users created before \
                 permissions were stored keep every permission"
            );
        }
        users.check_root_binding()?;
        Ok(users)
    }

    /// Deletes the root user's tokens if the root credentials are not those they
    /// were created under; binds tokens of an earlier version's file to the current
    /// credentials.
    fn check_root_binding(&self) -> Result<(), UserError> {
        let mut state = self.write();
        let root_tokens = state
            .tokens
            .iter()
            .filter(|t| t.user_id == ROOT_USER_ID)
            .count();
        if root_tokens == 0 {
            return Ok(());
        }
        let matches = state.root_binding.as_ref().map(|binding| {
            binding.username == self.root.username
                && verify_hash(self.root.password.expose_secret(), &binding.password_hash)
        });
        match matches {
            Some(true) => {
                state.root_binding_current = true;
                return Ok(());
            }
            Some(false) => {
                state.tokens.retain(|t| t.user_id != ROOT_USER_ID);
                tracing::warn!(
                    revoked = root_tokens,
                    "the root user name or password changed: the root user's personal access tokens were deleted"
                );
            }
            None => {}
        }
        state.root_binding = Some(self.root_binding()?);
        state.root_binding_current = true;
        self.save(&state)
    }

    fn root_binding(&self) -> Result<RootBinding, UserError> {
        Ok(RootBinding {
            username: self.root.username.clone(),
            password_hash: hash_password(self.root.password.expose_secret())?,
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, UsersFile> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, UsersFile> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn save(&self, state: &UsersFile) -> Result<(), UserError> {
        persist::write_json(&self.path, state)?;
        Ok(())
    }

    fn root_info(&self) -> UserInfo {
        UserInfo {
            id: ROOT_USER_ID,
            username: self.root.username.clone(),
            created_at: self.root.created_at,
            active: true,
            permissions: Some(Permissions::all()),
        }
    }

    /// The grant for these credentials, or `None`: the same answer whether the user
    /// does not exist, is inactive or the password is wrong. Slow (Argon2): call it
    /// off the async runtime.
    pub(crate) fn verify_password(&self, username: &str, password: &str) -> Option<Grant> {
        if username == self.root.username {
            let digest = keyed_digest(&self.root.key, password.as_bytes());
            if constant_time_eq(&digest, &self.root.digest) {
                return Some(Grant {
                    user_id: ROOT_USER_ID,
                    epoch: 0,
                    token: None,
                });
            }
            // A failure takes the time of an Argon2 verification, as for every
            // other name: a fast refusal would tell which name is the root's.
            self.spend_verification_time(password);
            return None;
        }
        let stored = self
            .read()
            .users
            .iter()
            .find(|u| u.username == username)
            .cloned();
        match stored {
            Some(user) => {
                (verify_hash(password, &user.password_hash) && user.active).then_some(Grant {
                    user_id: user.id,
                    epoch: user.epoch,
                    token: None,
                })
            }
            None => {
                // Spend the same time as for an existing user.
                self.spend_verification_time(password);
                None
            }
        }
    }

    /// Verifies `password` against a hash of nothing, for the time it takes.
    fn spend_verification_time(&self, password: &str) {
        let dummy = self
            .dummy_hash
            .get_or_init(|| hash_password("not a password").unwrap_or_default());
        let _ = verify_hash(password, dummy);
    }

    /// The grant for a personal access token, if it is valid, not expired, and its
    /// user is active.
    pub(crate) fn verify_token(&self, token: &str) -> Option<Grant> {
        let digest = token_digest(token);
        let now = batch::now_micros();
        let state = self.read();
        let user_id = state
            .tokens
            .iter()
            .find(|t| t.token_hash == digest && t.expiry_at.is_none_or(|at| at > now))
            .map(|t| t.user_id)?;
        let epoch = if user_id == ROOT_USER_ID {
            0
        } else {
            state
                .users
                .iter()
                .find(|u| u.id == user_id && u.active)?
                .epoch
        };
        Some(Grant {
            user_id,
            epoch,
            token: Some(digest),
        })
    }

    /// The user a session acts as, if its grant is still current: the user exists
    /// and is active, its credentials did not change since the login, and the token
    /// of a token login still exists. `None` means the session is revoked.
    pub(crate) fn current_user(&self, grant: &Grant) -> Option<UserInfo> {
        let state = self.read();
        if let Some(digest) = &grant.token
            && !state
                .tokens
                .iter()
                .any(|t| t.user_id == grant.user_id && t.token_hash == *digest)
        {
            return None;
        }
        if grant.user_id == ROOT_USER_ID {
            return Some(self.root_info());
        }
        state
            .users
            .iter()
            .find(|u| u.id == grant.user_id && u.active && u.epoch == grant.epoch)
            .map(stored_info)
    }

    /// The user, if it exists.
    pub(crate) fn user(&self, user: UserRef<'_>) -> Option<UserInfo> {
        let is_root = match user {
            UserRef::Id(id) => id == ROOT_USER_ID,
            UserRef::Name(name) => name == self.root.username,
        };
        if is_root {
            return Some(self.root_info());
        }
        self.read()
            .users
            .iter()
            .find(|u| match user {
                UserRef::Id(id) => u.id == id,
                UserRef::Name(name) => u.username == name,
            })
            .map(stored_info)
    }

    /// Every user, root first.
    pub(crate) fn list(&self) -> Vec<UserInfo> {
        let mut all = vec![self.root_info()];
        all.extend(self.read().users.iter().map(stored_info));
        all
    }

    /// Creates a user with `permissions` (`None`: none at all). Slow (Argon2): call
    /// it off the async runtime.
    pub(crate) fn create(
        &self,
        username: &str,
        password: &str,
        active: bool,
        permissions: Option<Permissions>,
    ) -> Result<UserInfo, UserError> {
        validate_username(username)?;
        validate_password(password)?;
        if self.name_taken(username, None) {
            return Err(UserError::AlreadyExists);
        }
        let password_hash = hash_password(password)?;
        let mut state = self.write();
        if state.users.iter().any(|u| u.username == username) {
            return Err(UserError::AlreadyExists);
        }
        let user = StoredUser {
            id: state.next_id,
            username: username.to_owned(),
            password_hash,
            active,
            created_at: batch::now_micros(),
            permissions,
            epoch: 0,
        };
        state.next_id += 1;
        state.users.push(user.clone());
        if let Err(e) = self.save(&state) {
            state.users.pop();
            return Err(e);
        }
        Ok(stored_info(&user))
    }

    /// Whether `username` is the root's or a created user's other than `except`.
    fn name_taken(&self, username: &str, except: Option<u32>) -> bool {
        username == self.root.username
            || self
                .read()
                .users
                .iter()
                .any(|u| u.username == username && Some(u.id) != except)
    }

    /// Deletes a user and its tokens; returns its id. Its sessions are revoked.
    pub(crate) fn delete(&self, user: UserRef<'_>) -> Result<u32, UserError> {
        let id = self.user(user).ok_or(UserError::NotFound)?.id;
        if id == ROOT_USER_ID {
            return Err(UserError::Root);
        }
        let mut state = self.write();
        let before = (state.users.clone(), state.tokens.clone());
        state.users.retain(|u| u.id != id);
        state.tokens.retain(|t| t.user_id != id);
        if let Err(e) = self.save(&state) {
            (state.users, state.tokens) = before;
            return Err(e);
        }
        Ok(id)
    }

    /// Renames a created user and/or sets its status. Deactivating a user revokes
    /// its sessions (its tokens stay, and work again once it is active).
    pub(crate) fn update(
        &self,
        user: UserRef<'_>,
        username: Option<&str>,
        active: Option<bool>,
    ) -> Result<UserInfo, UserError> {
        let id = self.user(user).ok_or(UserError::NotFound)?.id;
        if id == ROOT_USER_ID {
            return Err(UserError::Root);
        }
        if let Some(name) = username {
            validate_username(name)?;
            if self.name_taken(name, Some(id)) {
                return Err(UserError::AlreadyExists);
            }
        }
        let mut state = self.write();
        if let Some(name) = username
            && state.users.iter().any(|u| u.username == name && u.id != id)
        {
            return Err(UserError::AlreadyExists);
        }
        let stored = state
            .users
            .iter_mut()
            .find(|u| u.id == id)
            .ok_or(UserError::NotFound)?;
        let before = stored.clone();
        if let Some(name) = username {
            stored.username = name.to_owned();
        }
        if let Some(active) = active
            && active != stored.active
        {
            stored.active = active;
            stored.epoch += 1;
        }
        let info = stored_info(stored);
        if let Err(e) = self.save(&state) {
            if let Some(stored) = state.users.iter_mut().find(|u| u.id == id) {
                *stored = before;
            }
            return Err(e);
        }
        Ok(info)
    }

    /// Replaces a created user's permissions (`None`: none at all). They apply to
    /// the user's open sessions from their next request.
    pub(crate) fn update_permissions(
        &self,
        user: UserRef<'_>,
        permissions: Option<Permissions>,
    ) -> Result<UserInfo, UserError> {
        let id = self.user(user).ok_or(UserError::NotFound)?.id;
        if id == ROOT_USER_ID {
            return Err(UserError::RootPermissions);
        }
        let mut state = self.write();
        let stored = state
            .users
            .iter_mut()
            .find(|u| u.id == id)
            .ok_or(UserError::NotFound)?;
        let before = std::mem::replace(&mut stored.permissions, permissions);
        let info = stored_info(stored);
        if let Err(e) = self.save(&state) {
            if let Some(stored) = state.users.iter_mut().find(|u| u.id == id) {
                stored.permissions = before;
            }
            return Err(e);
        }
        Ok(info)
    }

    /// Changes a created user's password after checking the current one. This
    /// revokes the user's sessions and deletes its tokens; the returned grant keeps
    /// the session that made the change. Slow (Argon2): call it off the async
    /// runtime.
    pub(crate) fn change_password(
        &self,
        user: UserRef<'_>,
        current: &str,
        new: &str,
    ) -> Result<Grant, UserError> {
        let info = self.user(user).ok_or(UserError::NotFound)?;
        if info.id == ROOT_USER_ID {
            return Err(UserError::Root);
        }
        validate_password(new)?;
        if self
            .verify_password(&info.username, current)
            .is_none_or(|grant| grant.user_id != info.id)
        {
            return Err(UserError::InvalidCredentials);
        }
        let hash = hash_password(new)?;
        let mut state = self.write();
        let before = (state.users.clone(), state.tokens.clone());
        let stored = state
            .users
            .iter_mut()
            .find(|u| u.id == info.id)
            .ok_or(UserError::NotFound)?;
        stored.password_hash = hash;
        stored.epoch += 1;
        let grant = Grant {
            user_id: info.id,
            epoch: stored.epoch,
            token: None,
        };
        state.tokens.retain(|t| t.user_id != info.id);
        if let Err(e) = self.save(&state) {
            (state.users, state.tokens) = before;
            return Err(e);
        }
        Ok(grant)
    }

    /// Creates a personal access token for `user_id`; returns the token (shown
    /// once, never stored). The first token of the root user binds the root tokens
    /// to the current root credentials (Argon2: call it off the async runtime).
    pub(crate) fn create_token(
        &self,
        user_id: u32,
        name: &str,
        expiry_at: Option<u64>,
    ) -> Result<String, UserError> {
        if !(3..=30).contains(&name.chars().count()) || name.chars().any(char::is_control) {
            return Err(UserError::InvalidTokenName);
        }
        let binding = if user_id == ROOT_USER_ID && !self.read().root_binding_current {
            Some(self.root_binding()?)
        } else {
            None
        };
        let mut state = self.write();
        let owned = state.tokens.iter().filter(|t| t.user_id == user_id);
        if owned.clone().any(|t| t.name == name) {
            return Err(UserError::TokenExists);
        }
        if owned.count() >= MAX_TOKENS_PER_USER {
            return Err(UserError::TooManyTokens);
        }
        let token = hex(&random_key());
        let previous_binding = state.root_binding.clone();
        if let Some(binding) = binding
            && !state.root_binding_current
        {
            state.root_binding = Some(binding);
        }
        state.tokens.push(StoredToken {
            user_id,
            name: name.to_owned(),
            token_hash: token_digest(&token),
            expiry_at,
        });
        if let Err(e) = self.save(&state) {
            state.tokens.pop();
            state.root_binding = previous_binding;
            return Err(e);
        }
        if user_id == ROOT_USER_ID {
            state.root_binding_current = true;
        }
        Ok(token)
    }

    /// Deletes a token of `user_id`. Sessions that logged in with it are revoked.
    pub(crate) fn delete_token(&self, user_id: u32, name: &str) -> Result<(), UserError> {
        let mut state = self.write();
        let before = state.tokens.clone();
        state
            .tokens
            .retain(|t| !(t.user_id == user_id && t.name == name));
        if state.tokens.len() == before.len() {
            return Err(UserError::TokenNotFound);
        }
        if let Err(e) = self.save(&state) {
            state.tokens = before;
            return Err(e);
        }
        Ok(())
    }

    /// The tokens of `user_id`.
    pub(crate) fn tokens(&self, user_id: u32) -> Vec<TokenInfo> {
        self.read()
            .tokens
            .iter()
            .filter(|t| t.user_id == user_id)
            .map(|t| TokenInfo {
                name: t.name.clone(),
                expiry_at: t.expiry_at,
            })
            .collect()
    }
}

fn stored_info(u: &StoredUser) -> UserInfo {
    UserInfo {
        id: u.id,
        username: u.username.clone(),
        created_at: u.created_at,
        active: u.active,
        permissions: u.permissions.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_follows_the_configuration_and_wrong_passwords_fail() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::open(dir.path(), "iggy", "secret").unwrap();
        assert_eq!(
            users.verify_password("iggy", "secret").map(|g| g.user_id),
            Some(0)
        );
        assert_eq!(
            users.verify_password("iggy", "Secret").map(|g| g.user_id),
            None
        );
        assert_eq!(users.user(UserRef::Id(0)).unwrap().username, "iggy");
        assert!(matches!(users.delete(UserRef::Id(0)), Err(UserError::Root)));
    }

    #[test]
    fn created_users_are_hashed_persisted_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::open(dir.path(), "iggy", "iggy").unwrap();
        let alice = users.create("alice", "wonderland", true, None).unwrap();
        assert_eq!(alice.id, 1);
        assert!(matches!(
            users.create("alice", "xyz", true, None),
            Err(UserError::AlreadyExists)
        ));
        assert!(matches!(
            users.create("al", "xyz", true, None),
            Err(UserError::InvalidUsername)
        ));
        let file = std::fs::read_to_string(dir.path().join(USERS_FILE)).unwrap();
        assert!(
            file.contains("$argon2id$") && !file.contains("wonderland"),
            "{file}"
        );

        let reopened = Users::open(dir.path(), "iggy", "iggy").unwrap();
        assert_eq!(
            reopened
                .verify_password("alice", "wonderland")
                .map(|g| g.user_id),
            Some(1)
        );
        assert_eq!(
            reopened
                .verify_password("alice", "wrong")
                .map(|g| g.user_id),
            None
        );
        assert_eq!(
            reopened
                .verify_password("nobody", "wonderland")
                .map(|g| g.user_id),
            None
        );
        reopened.delete(UserRef::Name("alice")).unwrap();
        assert_eq!(reopened.list().len(), 1);
    }

    #[test]
    fn tokens_are_stored_hashed_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::open(dir.path(), "iggy", "iggy").unwrap();
        let token = users.create_token(0, "ci-token", None).unwrap();
        let expired = users.create_token(0, "old-token", Some(1)).unwrap();
        assert_eq!(users.verify_token(&token).map(|g| g.user_id), Some(0));
        assert_eq!(users.verify_token(&expired).map(|g| g.user_id), None);
        assert_eq!(users.verify_token("guess").map(|g| g.user_id), None);
        assert!(matches!(
            users.create_token(0, "ci-token", None),
            Err(UserError::TokenExists)
        ));
        let file = std::fs::read_to_string(dir.path().join(USERS_FILE)).unwrap();
        assert!(!file.contains(&token));
        users.delete_token(0, "ci-token").unwrap();
        assert_eq!(users.verify_token(&token).map(|g| g.user_id), None);
        assert_eq!(users.tokens(0).len(), 1);
    }

    #[test]
    fn grants_stop_being_current_when_credentials_change() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::open(dir.path(), "iggy", "iggy").unwrap();
        users.create("alice", "wonderland", true, None).unwrap();
        users.create("bob", "builder", true, None).unwrap();
        let alice = users.verify_password("alice", "wonderland").unwrap();
        let token = users.create_token(alice.user_id, "ci-token", None).unwrap();
        let by_token = users.verify_token(&token).unwrap();
        let bob = users.verify_password("bob", "builder").unwrap();
        assert!(users.current_user(&alice).is_some());
        assert!(users.current_user(&by_token).is_some());

        // A password change: every grant of alice ends (tokens included), the
        // returned one is current; bob is untouched.
        let renewed = users
            .change_password(UserRef::Name("alice"), "wonderland", "looking-glass")
            .unwrap();
        assert!(users.current_user(&alice).is_none());
        assert!(users.current_user(&by_token).is_none());
        assert_eq!(users.verify_token(&token), None);
        assert!(users.current_user(&renewed).is_some());
        assert!(users.current_user(&bob).is_some());

        // Deactivation ends the grant; reactivation does not revive it.
        users
            .update(UserRef::Name("alice"), None, Some(false))
            .unwrap();
        assert!(users.current_user(&renewed).is_none());
        assert_eq!(users.verify_password("alice", "looking-glass"), None);
        users
            .update(UserRef::Name("alice"), None, Some(true))
            .unwrap();
        assert!(users.current_user(&renewed).is_none());
        let again = users.verify_password("alice", "looking-glass").unwrap();
        // A rename keeps the session.
        users
            .update(UserRef::Name("alice"), Some("alicia"), None)
            .unwrap();
        assert!(users.current_user(&again).is_some());
        assert!(matches!(
            users.update(UserRef::Name("alicia"), Some("bob"), None),
            Err(UserError::AlreadyExists)
        ));

        // A deleted token ends the sessions that used it, not the others.
        let token = users.create_token(bob.user_id, "deploy", None).unwrap();
        let bob_by_token = users.verify_token(&token).unwrap();
        users.delete_token(bob.user_id, "deploy").unwrap();
        assert!(users.current_user(&bob_by_token).is_none());
        assert!(users.current_user(&bob).is_some());

        // A deleted user's grants end; a new user of the same name does not
        // inherit them.
        users.delete(UserRef::Name("bob")).unwrap();
        assert!(users.current_user(&bob).is_none());
        users.create("bob", "builder", true, None).unwrap();
        assert!(users.current_user(&bob).is_none());
    }

    #[test]
    fn root_tokens_are_bound_to_the_root_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::open(dir.path(), "iggy", "first-secret").unwrap();
        let token = users.create_token(ROOT_USER_ID, "ci-token", None).unwrap();
        let alice = users.create("alice", "wonderland", true, None).unwrap();
        let alice_token = users.create_token(alice.id, "alice-ci", None).unwrap();
        drop(users);
        // The same credentials: the token still works.
        let users = Users::open(dir.path(), "iggy", "first-secret").unwrap();
        assert_eq!(users.verify_token(&token).map(|g| g.user_id), Some(0));
        drop(users);
        // A new root password: root tokens are gone, other users' stay.
        let users = Users::open(dir.path(), "iggy", "second-secret").unwrap();
        assert_eq!(users.verify_token(&token), None);
        assert!(users.tokens(ROOT_USER_ID).is_empty());
        assert_eq!(
            users.verify_token(&alice_token).map(|g| g.user_id),
            Some(alice.id)
        );
        // A token made now is bound to the new password, and survives a reopen.
        let token = users.create_token(ROOT_USER_ID, "ci-token", None).unwrap();
        drop(users);
        let users = Users::open(dir.path(), "iggy", "second-secret").unwrap();
        assert_eq!(users.verify_token(&token).map(|g| g.user_id), Some(0));
        drop(users);
        // A new root user name revokes them as well.
        let users = Users::open(dir.path(), "admin", "second-secret").unwrap();
        assert_eq!(users.verify_token(&token), None);
        let file = std::fs::read_to_string(dir.path().join(USERS_FILE)).unwrap();
        assert!(!file.contains("second-secret"), "{file}");
    }

    #[test]
    fn root_tokens_of_an_earlier_file_are_bound_at_the_first_open() {
        let dir = tempfile::tempdir().unwrap();
        // users.json as versions without the binding wrote it.
        let earlier = serde_json::json!({
            "format": 1,
            "next_id": 1,
            "users": [],
            "tokens": [{
                "user_id": 0,
                "name": "old-token",
                "token_hash": token_digest("an-old-root-token"),
                "expiry_at": null,
            }],
        });
        std::fs::write(dir.path().join(USERS_FILE), earlier.to_string()).unwrap();
        let users = Users::open(dir.path(), "iggy", "current").unwrap();
        assert_eq!(
            users.verify_token("an-old-root-token").map(|g| g.user_id),
            Some(0),
            "kept, and bound to the credentials of this start"
        );
        drop(users);
        let users = Users::open(dir.path(), "iggy", "rotated").unwrap();
        assert_eq!(users.verify_token("an-old-root-token"), None);
    }

    #[test]
    fn users_of_a_file_without_permissions_keep_every_right() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::open(dir.path(), "iggy", "iggy").unwrap();
        users.create("alice", "wonderland", true, None).unwrap();
        drop(users);
        // The file as the version before permissions wrote it: format 1, no
        // permissions field.
        let path = dir.path().join(USERS_FILE);
        let mut file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        file["format"] = serde_json::json!(FORMAT_WITHOUT_PERMISSIONS);
        for user in file["users"].as_array_mut().unwrap() {
            user.as_object_mut().unwrap().remove("permissions");
        }
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();

        let users = Users::open(dir.path(), "iggy", "iggy").unwrap();
        let alice = users.user(UserRef::Name("alice")).unwrap();
        assert_eq!(alice.permissions, Some(Permissions::all()));
        let migrated: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(migrated["format"], serde_json::json!(FORMAT_VERSION));
        // The migration happens once: a user restricted afterwards stays so.
        users
            .update_permissions(UserRef::Name("alice"), None)
            .unwrap();
        drop(users);
        let users = Users::open(dir.path(), "iggy", "iggy").unwrap();
        assert_eq!(
            users.user(UserRef::Name("alice")).unwrap().permissions,
            None
        );
        // The root user's permissions are fixed.
        assert!(matches!(
            users.update_permissions(UserRef::Id(ROOT_USER_ID), None),
            Err(UserError::RootPermissions)
        ));
    }

    #[test]
    fn a_file_of_a_newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::open(dir.path(), "iggy", "iggy").unwrap();
        users.create("alice", "wonderland", true, None).unwrap();
        drop(users);
        let path = dir.path().join(USERS_FILE);
        let mut file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        file["format"] = serde_json::json!(FORMAT_VERSION + 1);
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        assert!(matches!(
            Users::open(dir.path(), "iggy", "iggy"),
            Err(UserError::NewerFormat { .. })
        ));
    }
}
