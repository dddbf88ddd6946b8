//! The exit-status table by family of commands, from [`super::exit::TABLE`] and its usage-error rule, so the man
//! page's EXIT STATUS section says what the commands do. A command's family is [`exit::PLUGIN_COMMANDS`]; its usage status
//! is what [`exit::for_usage_error`] answers for it.

use clap::CommandFactory;

use super::exit;

/// One family of commands and what each status means for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitFamily {
    /// What the family is called in the table (`monitoring plugins`, `the other commands`).
    pub name: &'static str,
    /// `pgtls` for the dashboard, else `pgtls NAME`.
    pub commands: Vec<String>,
    /// (status, meaning), by status; statuses that share a code are one row with their meanings joined.
    pub rows: Vec<(u8, String)>,
}

/// Every command pgtls has: the dashboard (`None`) and each subcommand's name.
fn commands() -> Vec<Option<String>> {
    let root = crate::cli::Cli::command();
    let mut out = vec![None];
    out.extend(
        root.get_subcommands()
            .map(|c| c.get_name().to_string())
            .filter(|name| name != "help")
            .map(Some),
    );
    out
}

fn is_plugin(command: Option<&str>) -> bool {
    command.is_some_and(|c| exit::PLUGIN_COMMANDS.contains(&c))
}

/// `(code, meaning)` pairs merged by code, in the order of their codes.
fn merged(entries: Vec<(u8, &str)>) -> Vec<(u8, String)> {
    let mut rows: Vec<(u8, String)> = Vec::new();
    for (code, meaning) in entries {
        match rows.iter_mut().find(|(c, _)| *c == code) {
            Some((_, text)) if !text.contains(meaning) => {
                text.push_str("; or ");
                text.push_str(meaning);
            }
            Some(_) => {}
            None => rows.push((code, meaning.to_string())),
        }
    }
    rows.sort_by_key(|(code, _)| *code);
    rows
}

/// The families of commands, each with its statuses: the plugins first, then the rest.
pub fn families() -> Vec<ExitFamily> {
    let mut out = Vec::new();
    for plugin in [true, false] {
        let members: Vec<Option<String>> = commands()
            .into_iter()
            .filter(|c| is_plugin(c.as_deref()) == plugin)
            .collect();
        if members.is_empty() {
            continue;
        }
        // The meanings are exit::TABLE's, the one table the README prints too; the usage status each member gets
        // from for_usage_error must be one of its family's rows (the test below holds that).
        let family = if plugin { "plugins" } else { "plain" };
        let entries: Vec<(u8, &str)> = exit::TABLE
            .iter()
            .filter(|row| row.commands == family)
            .map(|row| (row.code, row.meaning))
            .collect();
        out.push(ExitFamily {
            name: if plugin {
                "monitoring plugins"
            } else {
                "the other commands"
            },
            commands: members
                .iter()
                .map(|c| c.as_ref().map_or_else(|| "pgtls".to_string(), |c| format!("pgtls {c}")))
                .collect(),
            rows: merged(entries),
        });
    }
    out
}

/// The family of one command (`None`: the dashboard).
pub fn family_of(command: Option<&str>) -> Option<ExitFamily> {
    let name = command.map_or_else(|| "pgtls".to_string(), |c| format!("pgtls {c}"));
    families().into_iter().find(|f| f.commands.contains(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status a command line with an unknown flag gets, for this command.
    fn usage_status(command: Option<&str>) -> u8 {
        let mut args: Vec<std::ffi::OsString> = vec!["pgtls".into()];
        args.extend(command.map(Into::into));
        args.push("--no-such-flag".into());
        exit::for_usage_error(&args, clap::error::ErrorKind::UnknownArgument)
    }

    #[test]
    fn every_command_is_in_one_family_with_its_codes() {
        let families = families();
        for command in commands() {
            let name = command
                .as_ref()
                .map_or_else(|| "pgtls".to_string(), |c| format!("pgtls {c}"));
            let holding: Vec<&ExitFamily> = families.iter().filter(|f| f.commands.contains(&name)).collect();
            assert_eq!(holding.len(), 1, "{name}");
            let codes: Vec<u8> = holding[0].rows.iter().map(|(c, _)| *c).collect();
            assert!(codes.contains(&usage_status(command.as_deref())), "{name}");
        }
        let plugins = family_of(Some("check")).unwrap();
        assert_eq!(plugins.rows.len(), 4);
        assert!(plugins.rows[3].1.starts_with("UNKNOWN") && plugins.rows[3].1.contains("usage error"));
        let plain = family_of(None).unwrap();
        assert_eq!(plain.rows[0], (0, "success".to_string()));
    }
}
