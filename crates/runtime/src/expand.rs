//! Kubernetes' `$(VAR)` expansion and the environment of a replica: pure functions.
//!
//! [`expand`] is a transcription of Kubernetes' `third_party/forked/golang/expansion/expand.go`
//! (the code that expands `command`, `args` and `env[].value`): `$(NAME)` is replaced by the
//! variable's value, `$$` is an escaped `$`, a reference to an unknown variable and an unclosed
//! `$(` are left as written, and a `$` before any other character stays as is. One deliberate
//! difference: Go copies the byte after a lone `$` with `string(byte)`, which mangles a
//! non-ASCII character; this keeps it intact.

use std::collections::HashMap;

use wisp_api::core::Container;

/// Expands `$(VAR)` references in `input` with `lookup`; see the module docs for the rules.
pub fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    // Start of the input not yet copied to `out`.
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match rest.as_bytes()[0] {
                // `$$`: an escaped operator.
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest.find(')') {
                    Some(close) => {
                        let name = &rest[1..close];
                        match lookup(name) {
                            Some(v) => out.push_str(&v),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        close + 1
                    }
                    // Incomplete reference: keep `$(` and go on after it.
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                // A `$` that starts no expression: keep it and the character after it.
                _ => {
                    let ch = rest.chars().next().map_or(1, char::len_utf8);
                    out.push('$');
                    out.push_str(&rest[..ch]);
                    ch
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    if checkpoint < input.len() {
        out.push_str(&input[checkpoint..]);
    }
    out
}

/// What the runtime adds to a container's own environment.
#[derive(Debug, Clone, Default)]
pub struct EnvInputs<'a> {
    /// Variables taken from the daemon's environment (Kubernetes' analogue is the image's
    /// `ENV`); the container's own entries override them.
    pub inherited: &'a [(String, String)],
    /// Values resolved by the caller: `K_SERVICE`, `K_CONFIGURATION`, `K_REVISION`, and the
    /// values of the container's `valueFrom` entries (by name).
    pub extra: &'a [(String, String)],
    /// The port the replica must listen on (`PORT`).
    pub port: u16,
}

/// The environment of a replica, in order, as Kubernetes + Knative build it:
/// 1. the inherited variables;
/// 2. the container's `env` in order: a `value` is expanded with `$(VAR)` against the entries
///    before it (and the inherited ones); a `valueFrom` entry takes its value from
///    `inputs.extra` and is skipped when the caller resolved none (an optional reference);
/// 3. the remaining `inputs.extra` entries (the `K_*` variables), which Knative appends;
/// 4. `PORT`.
///
/// A later entry replaces an earlier one of the same name in place.
pub fn build_env(container: &Container, inputs: &EnvInputs<'_>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut set = |env: &mut Vec<(String, String)>, name: &str, value: String| match index.get(name)
    {
        Some(&i) => env[i].1 = value,
        None => {
            index.insert(name.to_string(), env.len());
            env.push((name.to_string(), value));
        }
    };
    for (k, v) in inputs.inherited {
        set(&mut env, k, v.clone());
    }
    let extra = |name: &str| {
        inputs
            .extra
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    for var in &container.env {
        if var.value_from.is_some() {
            if let Some(v) = extra(&var.name) {
                set(&mut env, &var.name, v);
            }
            continue;
        }
        let value = expand(&var.value, |name| {
            env.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        });
        set(&mut env, &var.name, value);
    }
    for (k, v) in inputs.extra {
        let from_container = container
            .env
            .iter()
            .any(|e| e.value_from.is_some() && e.name == *k);
        if !from_container {
            set(&mut env, k, v.clone());
        }
    }
    set(&mut env, "PORT", inputs.port.to_string());
    env
}

/// Expands the container's `command` and `args` with the final environment; returns
/// `(program, arguments)`, or `None` when there is no command.
pub fn expand_command(
    container: &Container,
    env: &[(String, String)],
) -> Option<(String, Vec<String>)> {
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let mut words = container
        .command
        .iter()
        .chain(container.args.iter())
        .map(|w| expand(w, lookup));
    let program = words.next()?;
    if container.command.is_empty() {
        return None;
    }
    Some((program, words.collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wisp_api::core::{EnvVar, EnvVarSource, KeySelector};

    fn vars(name: &str) -> Option<String> {
        match name {
            "VAR_A" => Some("A".into()),
            "VAR_B" => Some("B".into()),
            "VAR_C" => Some("C".into()),
            "VAR_REF" => Some("$(VAR_A)".into()),
            "VAR_EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    /// The cases of Kubernetes' `expand_test.go` (TestMapReference / TestExpand).
    #[test]
    fn kubernetes_expansion_cases() {
        let cases = [
            ("whole string", "$(VAR_A)", "A"),
            ("repeat", "$(VAR_A)-$(VAR_A)", "A-A"),
            ("beginning", "$(VAR_A)-1", "A-1"),
            ("middle", "___$(VAR_B)___", "___B___"),
            ("end", "___$(VAR_C)", "___C"),
            ("compound", "$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
            ("escape & expand", "$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
            (
                "compound escape",
                "$$(VAR_A)_$$(VAR_B)",
                "$(VAR_A)_$(VAR_B)",
            ),
            ("mixed in escapes", "f000-$$VAR_A", "f000-$VAR_A"),
            ("backslash escape ignored", "foo\\$(VAR_C)bar", "foo\\Cbar"),
            (
                "backslash escape ignored",
                "foo\\\\$(VAR_C)bar",
                "foo\\\\Cbar",
            ),
            (
                "lots of backslashes",
                "foo\\\\\\\\$(VAR_A)bar",
                "foo\\\\\\\\Abar",
            ),
            (
                "nested var references",
                "$(VAR_A$(VAR_B))",
                "$(VAR_A$(VAR_B))",
            ),
            (
                "nested var references second type",
                "$(VAR_A$(VAR_B)",
                "$(VAR_A$(VAR_B)",
            ),
            ("value is a reference", "$(VAR_REF)", "$(VAR_A)"),
            (
                "value is a reference x 2",
                "%%$(VAR_REF)--$(VAR_REF)%%",
                "%%$(VAR_A)--$(VAR_A)%%",
            ),
            ("empty var", "foo$(VAR_EMPTY)bar", "foobar"),
            (
                "unterminated expression",
                "foo$(VAR_Awhoops!",
                "foo$(VAR_Awhoops!",
            ),
            (
                "expression without operator",
                "f00__(VAR_A)__",
                "f00__(VAR_A)__",
            ),
            ("shell special vars pass through", "$?_boo_$!", "$?_boo_$!"),
            ("bare operators are ignored", "$VAR_A", "$VAR_A"),
            (
                "undefined vars are passed through",
                "$(VAR_DNE)",
                "$(VAR_DNE)",
            ),
            (
                "multiple (even) operators, var undefined",
                "$$$$$$(BIG_MONEY)",
                "$$$(BIG_MONEY)",
            ),
            (
                "multiple (even) operators, var defined",
                "$$$$$$(VAR_A)",
                "$$$(VAR_A)",
            ),
            (
                "multiple (odd) operators, var undefined",
                "$$$$$$$(GOOD_ODDS)",
                "$$$$(GOOD_ODDS)",
            ),
            (
                "multiple (odd) operators, var defined",
                "$$$$$$$(VAR_A)",
                "$$$A",
            ),
            ("missing open expression", "$VAR_A)", "$VAR_A)"),
            ("shell syntax ignored", "${VAR_A}", "${VAR_A}"),
            (
                "trailing incomplete expression not consumed",
                "$(VAR_B)_______$(A",
                "B_______$(A",
            ),
            (
                "trailing incomplete expression, no content, is not consumed",
                "$(VAR_C)_______$(",
                "C_______$(",
            ),
            (
                "operator at end of input string is preserved",
                "$(VAR_A)foobarzab$",
                "Afoobarzab$",
            ),
            (
                "shell escaped incomplete expr",
                "foo-\\$(VAR_A",
                "foo-\\$(VAR_A",
            ),
            ("lots of $( in middle", "--$($($($($--", "--$($($($($--"),
            (
                "lots of $( in beginning",
                "$($($($($--foo$(",
                "$($($($($--foo$(",
            ),
            ("lots of $( at end", "foo0--$($($($(", "foo0--$($($($("),
            (
                "escaped operators in variable names are not escaped",
                "$(foo$$var)",
                "$(foo$$var)",
            ),
            ("newline not expanded", "\n", "\n"),
            ("empty reference", "$()", "$()"),
            ("non-ascii after a lone operator", "$é$(VAR_A)", "$éA"),
        ];
        for (name, input, want) in cases {
            assert_eq!(expand(input, vars), want, "{name}: {input:?}");
        }
    }

    fn env(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: value.into(),
            value_from: None,
        }
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn builds_the_environment_in_kubernetes_order() {
        let container = Container {
            command: vec!["app".into()],
            env: vec![
                env("GREETING", "hello"),
                env("MSG", "$(GREETING) $(USER) $(K_SERVICE) $(LATER)"),
                env("LATER", "x"),
                env("PATH", "/opt/bin:$(PATH)"),
                EnvVar {
                    name: "SECRET".into(),
                    value: String::new(),
                    value_from: Some(EnvVarSource {
                        secret_key_ref: Some(KeySelector::default()),
                        ..EnvVarSource::default()
                    }),
                },
                EnvVar {
                    name: "MISSING".into(),
                    value: String::new(),
                    value_from: Some(EnvVarSource::default()),
                },
            ],
            ..Container::default()
        };
        let inherited = pairs(&[("PATH", "/usr/bin"), ("USER", "me")]);
        let extra = pairs(&[("SECRET", "s3cr3t"), ("K_SERVICE", "hello")]);
        let got = build_env(
            &container,
            &EnvInputs {
                inherited: &inherited,
                extra: &extra,
                port: 8123,
            },
        );
        assert_eq!(
            got,
            pairs(&[
                ("PATH", "/opt/bin:/usr/bin"),
                ("USER", "me"),
                ("GREETING", "hello"),
                // K_SERVICE comes after the container's env, LATER is defined later: both
                // stay as written, as in Kubernetes.
                ("MSG", "hello me $(K_SERVICE) $(LATER)"),
                ("LATER", "x"),
                ("SECRET", "s3cr3t"),
                ("K_SERVICE", "hello"),
                ("PORT", "8123"),
            ])
        );
    }

    #[test]
    fn port_and_k_vars_win_over_the_container() {
        let container = Container {
            command: vec!["app".into()],
            env: vec![env("PORT", "1"), env("K_REVISION", "mine")],
            ..Container::default()
        };
        let extra = pairs(&[("K_REVISION", "hello-00001")]);
        let got = build_env(
            &container,
            &EnvInputs {
                inherited: &[],
                extra: &extra,
                port: 9000,
            },
        );
        assert_eq!(
            got,
            pairs(&[("PORT", "9000"), ("K_REVISION", "hello-00001")])
        );
    }

    #[test]
    fn expands_command_and_args() {
        let container = Container {
            command: vec!["$(BIN)/server".into(), "--port=$(PORT)".into()],
            args: vec!["$$(PORT)".into(), "$(NOPE)".into()],
            ..Container::default()
        };
        let env = pairs(&[("BIN", "/opt"), ("PORT", "8080")]);
        assert_eq!(
            expand_command(&container, &env),
            Some((
                "/opt/server".to_string(),
                vec![
                    "--port=8080".to_string(),
                    "$(PORT)".to_string(),
                    "$(NOPE)".to_string()
                ]
            ))
        );
        let no_command = Container {
            args: vec!["x".into()],
            ..Container::default()
        };
        assert_eq!(expand_command(&no_command, &env), None);
    }
}
