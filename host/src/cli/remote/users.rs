//! `basalt user add|token|list|tokens|groups|email|delete`: the accounts lavacli and the admin commands log in
//! with. A token is printed once, when it is made; the master keeps only its digest.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{field, print_table, MasterArgs};
use crate::cli::Format;

/// `basalt user ...`
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user (needs a superuser's token, e.g. the master's admin token).
    Add(AddArgs),
    /// Make a new API token for a user and print it (the only time it is shown).
    Token(TokenArgs),
    /// List users.
    List(ListArgs),
    /// List a user's tokens (descriptions and dates, never the secrets).
    Tokens(NameArgs),
    /// Delete a user and their tokens (not `admin`, not yourself).
    Delete(NameArgs),
    /// Set the groups a user belongs to (jobs with `visibility: {group: [...]}` naming one
    /// are visible to it); none given: no groups.
    Groups(GroupsArgs),
    /// Set a user's e-mail address, where notifications for it go ("" clears it).
    Email(EmailArgs),
}

/// Flags of `basalt user add`.
#[derive(Args, Debug)]
pub struct AddArgs {
    /// The login name (what lavacli's `--username` says).
    pub name: String,
    /// May change the lab (devices, workers, device types, users), not only submit jobs.
    #[arg(long)]
    pub superuser: bool,
    /// Also make a token and print it.
    #[arg(long)]
    pub with_token: bool,
    /// A group it belongs to (may be repeated).
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// Its e-mail address, where its notifications go.
    #[arg(long, value_name = "ADDRESS", default_value = "")]
    pub email: String,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Flags of `basalt user email`.
#[derive(Args, Debug)]
pub struct EmailArgs {
    /// The user.
    pub name: String,
    /// The address (empty: none).
    pub email: String,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Flags of `basalt user groups`.
#[derive(Args, Debug)]
pub struct GroupsArgs {
    /// The user.
    pub name: String,
    /// Its groups, all of them.
    pub groups: Vec<String>,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Flags of `basalt user token`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    /// Whose token.
    pub name: String,
    /// What it is for (shown by `basalt user tokens`).
    #[arg(long, default_value = "")]
    pub description: String,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Flags of `basalt user list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

/// Flags naming one user.
#[derive(Args, Debug)]
pub struct NameArgs {
    /// The user.
    pub name: String,
    /// The master.
    #[command(flatten)]
    pub master: MasterArgs,
}

fn make_token(master: &MasterArgs, name: &str, description: &str) -> anyhow::Result<String> {
    let answer = master.client().post(
        &format!("/api/v1/users/{name}/tokens"),
        &json!({ "description": description }),
    )?;
    Ok(field(&answer, "token"))
}

/// Runs a `basalt user` command.
pub fn run(command: &UserCommand) -> anyhow::Result<ExitCode> {
    match command {
        UserCommand::Add(args) => {
            args.master.client().post(
                "/api/v1/users",
                &json!({
                    "name": args.name, "superuser": args.superuser, "groups": args.groups,
                    "email": args.email,
                }),
            )?;
            eprintln!(
                "user {} added{}",
                args.name,
                if args.superuser { " (superuser)" } else { "" }
            );
            if args.with_token {
                println!(
                    "{}",
                    make_token(&args.master, &args.name, "made with the user")?
                );
            }
        }
        UserCommand::Token(args) => {
            println!(
                "{}",
                make_token(&args.master, &args.name, &args.description)?
            );
        }
        UserCommand::List(args) => {
            let users = args.master.client().get("/api/v1/users")?;
            if args.format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&users)?);
            } else {
                let rows: Vec<Vec<String>> = users
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|u| {
                        let groups: Vec<&str> = u["groups"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(serde_json::Value::as_str)
                            .collect();
                        vec![
                            field(u, "name"),
                            field(u, "superuser"),
                            field(u, "active"),
                            groups.join(","),
                        ]
                    })
                    .collect();
                print_table(&["NAME", "SUPERUSER", "ACTIVE", "GROUPS"], &rows);
            }
        }
        UserCommand::Groups(args) => {
            args.master.client().send_json(
                "PUT",
                &format!("/api/v1/users/{}/groups", args.name),
                &json!(args.groups),
            )?;
            println!("user {}: groups {}", args.name, args.groups.join(", "));
        }
        UserCommand::Email(args) => {
            args.master.client().send_json(
                "PUT",
                &format!("/api/v1/users/{}/email", args.name),
                &json!(args.email),
            )?;
            println!("user {}: e-mail {:?}", args.name, args.email);
        }
        UserCommand::Delete(args) => {
            args.master
                .client()
                .delete(&format!("/api/v1/users/{}", args.name), &[])?;
            println!("user {} deleted", args.name);
        }
        UserCommand::Tokens(args) => {
            let tokens = args
                .master
                .client()
                .get(&format!("/api/v1/users/{}/tokens", args.name))?;
            println!("{}", serde_json::to_string_pretty(&tokens)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}
