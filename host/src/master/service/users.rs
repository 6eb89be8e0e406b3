//! Users and their API tokens.

use std::io::Read;

use super::{check_name, Caller, ErrorKind, ServiceError, ServiceResult};
use crate::store::{TokenInfo, User};

/// A new secret: 32 bytes from the kernel's generator, as 64 hex digits (lowercase
/// alphanumerics, which lavacli and URLs carry without quoting).
pub fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl super::Service {
    /// All users (superusers only).
    pub fn users(&self, caller: &Caller) -> ServiceResult<Vec<User>> {
        caller.require_superuser()?;
        Ok(self.store()?.users()?)
    }

    /// Creates a user (superusers only).
    pub fn add_user(&self, caller: &Caller, name: &str, superuser: bool) -> ServiceResult<User> {
        caller.require_superuser()?;
        check_name("user", name)?;
        let store = self.store()?;
        store.add_user(name, superuser)?;
        store.user(name)?.ok_or_else(|| {
            ServiceError::internal(format!("user {name} vanished right after it was added"))
        })
    }

    /// Sets the groups `name` belongs to (superusers only): jobs whose `visibility:` names
    /// one of them are visible to it.
    pub fn set_user_groups(
        &self,
        caller: &Caller,
        name: &str,
        groups: &[String],
    ) -> ServiceResult<User> {
        caller.require_superuser()?;
        for group in groups {
            check_name("group", group)?;
        }
        let store = self.store()?;
        store.set_user_groups(name, groups)?;
        store.user(name)?.ok_or_else(|| {
            ServiceError::internal(format!("user {name} vanished while its groups were set"))
        })
    }

    /// Sets `name`'s e-mail address (superusers, or the user themself); empty clears it.
    pub fn set_user_email(&self, caller: &Caller, name: &str, email: &str) -> ServiceResult<User> {
        let me = caller.require_user()?;
        if !me.superuser && me.name != name {
            return Err(ServiceError::new(
                ErrorKind::Forbidden,
                format!("only {name} or a superuser may set {name}'s e-mail address"),
            ));
        }
        let plain = crate::master::notify::plain_address(email);
        if !email.is_empty() && (!plain || email.len() > 254) {
            return Err(ServiceError::bad_request(format!(
                "{email:?} is not a valid email address."
            )));
        }
        let store = self.store()?;
        store.set_user_email(name, email)?;
        store.user(name)?.ok_or_else(|| {
            ServiceError::internal(format!("user {name} vanished while its e-mail was set"))
        })
    }

    /// Makes a new token for `name` and returns the secret, which is not kept: a user may
    /// make their own, a superuser anyone's.
    pub fn add_token(
        &self,
        caller: &Caller,
        name: &str,
        description: &str,
    ) -> ServiceResult<String> {
        let me = caller.require_user()?;
        if !me.superuser && me.name != name {
            return Err(ServiceError::new(
                ErrorKind::Forbidden,
                format!("only {name} or a superuser may make tokens for {name}"),
            ));
        }
        let secret = random_token()
            .map_err(|e| ServiceError::internal(format!("cannot read /dev/urandom: {e}")))?;
        self.store()?.add_token(name, &secret, description)?;
        Ok(secret)
    }

    /// What is known about `name`'s tokens (never the secrets).
    pub fn tokens(&self, caller: &Caller, name: &str) -> ServiceResult<Vec<TokenInfo>> {
        let me = caller.require_user()?;
        if !me.superuser && me.name != name {
            return Err(ServiceError::new(
                ErrorKind::Forbidden,
                format!("only {name} or a superuser may list the tokens of {name}"),
            ));
        }
        Ok(self.store()?.tokens(name)?)
    }

    /// Removes a user and their tokens. The master's own admin (whose token is in the data
    /// directory) and the caller themselves cannot be removed: either would lock the lab out.
    pub fn delete_user(&self, caller: &Caller, name: &str) -> ServiceResult<()> {
        let user = caller.require_superuser()?;
        if name == ADMIN {
            return Err(ServiceError::bad_request(format!(
                "{ADMIN} is the master's own superuser (DATA_DIR/admin-token) and cannot be deleted"
            )));
        }
        if name == user.name {
            return Err(ServiceError::bad_request(format!(
                "{name} cannot delete themselves: ask another superuser"
            )));
        }
        Ok(self.store()?.delete_user(name)?)
    }

    /// Makes sure the admin user exists and that `token` (the data directory's `admin-token`)
    /// is one of its tokens: the bootstrap credential of a fresh master.
    pub fn ensure_admin(&self, token: &str) -> ServiceResult<()> {
        let store = self.store()?;
        if store.user(ADMIN)?.is_none() {
            store.add_user(ADMIN, true)?;
        }
        store.add_token(ADMIN, token, "DATA_DIR/admin-token")?;
        Ok(())
    }
}

/// The superuser every master has; its first token is written to `DATA_DIR/admin-token`.
pub const ADMIN: &str = "admin";

/// LAVA's bounds on a remote artifact token's name and value.
const REMOTE_TOKEN_NAME_MAX: usize = 100;
const REMOTE_TOKEN_MAX: usize = 200;

impl super::Service {
    /// The caller's remote artifact tokens (name, value), by name: the secrets a callback's
    /// `token:` names. Each user sees only their own.
    pub fn remote_tokens(&self, caller: &Caller) -> ServiceResult<Vec<(String, String)>> {
        let user = caller.require_user()?;
        Ok(self
            .store()?
            .remote_tokens(&user.name)?
            .into_iter()
            .map(|t| (t.name, t.token))
            .collect())
    }

    /// One of the caller's remote artifact tokens.
    pub fn remote_token(&self, caller: &Caller, name: &str) -> ServiceResult<String> {
        self.remote_tokens(caller)?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, token)| token)
            .ok_or_else(|| remote_token_not_found(name))
    }

    /// Adds a remote artifact token for the caller.
    pub fn add_remote_token(&self, caller: &Caller, name: &str, token: &str) -> ServiceResult<()> {
        let user = caller.require_user()?;
        if name.is_empty()
            || name.len() > REMOTE_TOKEN_NAME_MAX
            || name.chars().any(char::is_control)
        {
            return Err(ServiceError::bad_request(format!(
                "a token name has 1 to {REMOTE_TOKEN_NAME_MAX} characters, none of them control \
                 characters"
            )));
        }
        if token.len() > REMOTE_TOKEN_MAX || token.contains(['\r', '\n']) {
            return Err(ServiceError::bad_request(format!(
                "a token value has at most {REMOTE_TOKEN_MAX} characters and no line breaks (it \
                 is sent as an HTTP header)"
            )));
        }
        self.store()?
            .add_remote_token(&user.name, name, token)
            .map_err(|e| match e {
                crate::store::StoreError::Exists { .. } => {
                    ServiceError::bad_request("Bad request: token already exists?")
                }
                other => other.into(),
            })
    }

    /// Removes one of the caller's remote artifact tokens.
    pub fn delete_remote_token(&self, caller: &Caller, name: &str) -> ServiceResult<()> {
        let user = caller.require_user()?;
        self.store()?
            .delete_remote_token(&user.name, name)
            .map_err(|e| match e {
                crate::store::StoreError::NotFound { .. } => remote_token_not_found(name),
                other => other.into(),
            })
    }

    /// The notifications of a job the caller may see, with their attempts.
    pub fn notifications(
        &self,
        caller: &Caller,
        id: u64,
    ) -> ServiceResult<Vec<crate::store::Notification>> {
        self.job_for(caller, id)?;
        let mut notifications = self.store()?.notifications_of(id)?;
        // A literal `token:` is a secret: the record says only that one was sent.
        for n in &mut notifications {
            if let Some(token) = n.spec.get_mut("token") {
                *token = serde_json::Value::String("********".into());
            }
        }
        Ok(notifications)
    }
}

fn remote_token_not_found(name: &str) -> ServiceError {
    ServiceError::new(
        ErrorKind::NotFound,
        format!("Token '{name}' was not found."),
    )
}
