//! Users of the TCP listener: the root user from the configuration, users created
//! over the wire, and personal access tokens.
//!
//! Storage of secrets:
//! - The **root user** (id 0) always follows `embedded.root_username` /
//!   `embedded.root_password`; its password is not written to disk (the
//!   configuration holds it already). In memory only a SHA-256 digest keyed with a
//!   random per-process key is kept, compared in constant time.
//! - **Created users** are persisted in `users.json` in the data directory with an
//!   **Argon2id** hash (the `argon2` crate with its default, OWASP-recommended
//!   parameters: 19 MiB, 2 passes, a random 16-byte salt per password, PHC string
//!   format). Hashing is deliberately slow: call the verifying methods off the
//!   async runtime (`spawn_blocking`).
//! - **Personal access tokens** are 256-bit random strings; only their SHA-256
//!   is stored (a fast hash is right for high-entropy secrets, as Iggy does with
//!   BLAKE3).
//!
//! Every user has every permission: the embedded broker does not implement Iggy's
//! per-stream permission model (a `CreateUser` with permissions is accepted, the
//! permissions are not stored). Create users only for people you would trust with
//! the root account.
//!
//! Nothing here logs a password or a token.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::password_hash::{PasswordHasher, generate_salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::persist;
use crate::batch;
use crate::embedded::StorageError;

pub(super) const USERS_FILE: &str = "users.json";
const FORMAT_VERSION: u32 = 1;
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredUser {
    id: u32,
    username: String,
    /// Argon2id PHC string.
    password_hash: String,
    active: bool,
    created_at: u64,
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
    created_at: u64,
}

/// The user store of one broker.
pub(crate) struct Users {
    path: PathBuf,
    root: Root,
    state: Mutex<UsersFile>,
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
    pub(crate) fn open(
        data_dir: &Path,
        root_username: &str,
        root_password: &str,
    ) -> Result<Self, UserError> {
        let path = data_dir.join(USERS_FILE);
        let mut state: UsersFile = persist::read_json(&path)?.unwrap_or_default();
        if state.format == 0 {
            state.format = FORMAT_VERSION;
        }
        state.next_id = state.next_id.max(ROOT_USER_ID + 1);
        let key = random_key();
        Ok(Self {
            path,
            root: Root {
                username: root_username.to_owned(),
                key,
                digest: keyed_digest(&key, root_password.as_bytes()),
                created_at: batch::now_micros(),
            },
            state: Mutex::new(state),
            dummy_hash: OnceLock::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, UsersFile> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
        }
    }

    /// The user id for these credentials, or `None` — the same answer whether the
    /// user does not exist, is inactive or the password is wrong. Slow (Argon2):
    /// call it off the async runtime.
    pub(crate) fn verify_password(&self, username: &str, password: &str) -> Option<u32> {
        if username == self.root.username {
            let digest = keyed_digest(&self.root.key, password.as_bytes());
            if constant_time_eq(&digest, &self.root.digest) {
                return Some(ROOT_USER_ID);
            }
            // A failure takes the time of an Argon2 verification, as for every
            // other name: a fast refusal would tell which name is the root's.
            self.spend_verification_time(password);
            return None;
        }
        let stored = self
            .lock()
            .users
            .iter()
            .find(|u| u.username == username)
            .cloned();
        match stored {
            Some(user) => {
                (verify_hash(password, &user.password_hash) && user.active).then_some(user.id)
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

    /// The user id a personal access token belongs to, if it is valid and not
    /// expired.
    pub(crate) fn verify_token(&self, token: &str) -> Option<u32> {
        let digest = token_digest(token);
        let now = batch::now_micros();
        let state = self.lock();
        let user_id = state
            .tokens
            .iter()
            .find(|t| t.token_hash == digest && t.expiry_at.is_none_or(|at| at > now))
            .map(|t| t.user_id)?;
        let active =
            user_id == ROOT_USER_ID || state.users.iter().any(|u| u.id == user_id && u.active);
        active.then_some(user_id)
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
        self.lock()
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
        all.extend(self.lock().users.iter().map(stored_info));
        all
    }

    /// Creates a user. Slow (Argon2): call it off the async runtime.
    pub(crate) fn create(
        &self,
        username: &str,
        password: &str,
        active: bool,
    ) -> Result<UserInfo, UserError> {
        validate_username(username)?;
        validate_password(password)?;
        if username == self.root.username
            || self.lock().users.iter().any(|u| u.username == username)
        {
            return Err(UserError::AlreadyExists);
        }
        let password_hash = hash_password(password)?;
        let mut state = self.lock();
        if state.users.iter().any(|u| u.username == username) {
            return Err(UserError::AlreadyExists);
        }
        let user = StoredUser {
            id: state.next_id,
            username: username.to_owned(),
            password_hash,
            active,
            created_at: batch::now_micros(),
        };
        state.next_id += 1;
        state.users.push(user.clone());
        if let Err(e) = self.save(&state) {
            state.users.pop();
            return Err(e);
        }
        Ok(stored_info(&user))
    }

    /// Deletes a user and its tokens.
    pub(crate) fn delete(&self, user: UserRef<'_>) -> Result<(), UserError> {
        let id = self.user(user).ok_or(UserError::NotFound)?.id;
        if id == ROOT_USER_ID {
            return Err(UserError::Root);
        }
        let mut state = self.lock();
        state.users.retain(|u| u.id != id);
        state.tokens.retain(|t| t.user_id != id);
        self.save(&state)
    }

    /// Changes a created user's password after checking the current one. Slow
    /// (Argon2): call it off the async runtime.
    pub(crate) fn change_password(
        &self,
        user: UserRef<'_>,
        current: &str,
        new: &str,
    ) -> Result<(), UserError> {
        let info = self.user(user).ok_or(UserError::NotFound)?;
        if info.id == ROOT_USER_ID {
            return Err(UserError::Root);
        }
        validate_password(new)?;
        if self.verify_password(&info.username, current) != Some(info.id) {
            return Err(UserError::InvalidCredentials);
        }
        let hash = hash_password(new)?;
        let mut state = self.lock();
        let stored = state
            .users
            .iter_mut()
            .find(|u| u.id == info.id)
            .ok_or(UserError::NotFound)?;
        stored.password_hash = hash;
        self.save(&state)
    }

    /// Creates a personal access token for `user_id`; returns the token (shown
    /// once, never stored).
    pub(crate) fn create_token(
        &self,
        user_id: u32,
        name: &str,
        expiry_at: Option<u64>,
    ) -> Result<String, UserError> {
        if !(3..=30).contains(&name.chars().count()) || name.chars().any(char::is_control) {
            return Err(UserError::InvalidTokenName);
        }
        let mut state = self.lock();
        let owned = state.tokens.iter().filter(|t| t.user_id == user_id);
        if owned.clone().any(|t| t.name == name) {
            return Err(UserError::TokenExists);
        }
        if owned.count() >= MAX_TOKENS_PER_USER {
            return Err(UserError::TooManyTokens);
        }
        let token = hex(&random_key());
        state.tokens.push(StoredToken {
            user_id,
            name: name.to_owned(),
            token_hash: token_digest(&token),
            expiry_at,
        });
        if let Err(e) = self.save(&state) {
            state.tokens.pop();
            return Err(e);
        }
        Ok(token)
    }

    /// Deletes a token of `user_id`.
    pub(crate) fn delete_token(&self, user_id: u32, name: &str) -> Result<(), UserError> {
        let mut state = self.lock();
        let before = state.tokens.len();
        state
            .tokens
            .retain(|t| !(t.user_id == user_id && t.name == name));
        if state.tokens.len() == before {
            return Err(UserError::TokenNotFound);
        }
        self.save(&state)
    }

    /// The tokens of `user_id`.
    pub(crate) fn tokens(&self, user_id: u32) -> Vec<TokenInfo> {
        self.lock()
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_follows_the_configuration_and_wrong_passwords_fail() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::open(dir.path(), "iggy", "secret").unwrap();
        assert_eq!(users.verify_password("iggy", "secret"), Some(0));
        assert_eq!(users.verify_password("iggy", "Secret"), None);
        assert_eq!(users.user(UserRef::Id(0)).unwrap().username, "iggy");
        assert!(matches!(users.delete(UserRef::Id(0)), Err(UserError::Root)));
    }

    #[test]
    fn created_users_are_hashed_persisted_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::open(dir.path(), "iggy", "iggy").unwrap();
        let alice = users.create("alice", "wonderland", true).unwrap();
        assert_eq!(alice.id, 1);
        assert!(matches!(
            users.create("alice", "xyz", true),
            Err(UserError::AlreadyExists)
        ));
        assert!(matches!(
            users.create("al", "xyz", true),
            Err(UserError::InvalidUsername)
        ));
        let file = std::fs::read_to_string(dir.path().join(USERS_FILE)).unwrap();
        assert!(
            file.contains("$argon2id$") && !file.contains("wonderland"),
            "{file}"
        );

        let reopened = Users::open(dir.path(), "iggy", "iggy").unwrap();
        assert_eq!(reopened.verify_password("alice", "wonderland"), Some(1));
        assert_eq!(reopened.verify_password("alice", "wrong"), None);
        assert_eq!(reopened.verify_password("nobody", "wonderland"), None);
        reopened.delete(UserRef::Name("alice")).unwrap();
        assert_eq!(reopened.list().len(), 1);
    }

    #[test]
    fn tokens_are_stored_hashed_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let users = Users::open(dir.path(), "iggy", "iggy").unwrap();
        let token = users.create_token(0, "ci-token", None).unwrap();
        let expired = users.create_token(0, "old-token", Some(1)).unwrap();
        assert_eq!(users.verify_token(&token), Some(0));
        assert_eq!(users.verify_token(&expired), None);
        assert_eq!(users.verify_token("guess"), None);
        assert!(matches!(
            users.create_token(0, "ci-token", None),
            Err(UserError::TokenExists)
        ));
        let file = std::fs::read_to_string(dir.path().join(USERS_FILE)).unwrap();
        assert!(!file.contains(&token));
        users.delete_token(0, "ci-token").unwrap();
        assert_eq!(users.verify_token(&token), None);
        assert_eq!(users.tokens(0).len(), 1);
    }
}
