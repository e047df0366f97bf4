//! Reading a container's `command` + `args` as a script — interpreted, never executed.
//!
//! The simulated kubelet runs nothing on the host. It only looks for two words, in any
//! statement of the script (statements are separated by `;`, `&&`, `||`, `|` or newlines, so
//! `["sh", "-c", "sleep 2; exit 3"]` reads as two statements):
//! - `sleep N` adds N seconds to the container's run time (`N` may be fractional and carry
//!   an `s`, `m` or `h` suffix; `sleep infinity` never finishes);
//! - `exit N` ends the script with exit code N (`exit` alone is `exit 0`).
//!
//! Everything else (`echo`, `sh -c`, ...) takes no time and cannot fail.

use std::time::Duration;

/// What a container's script does when "run".
#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    /// Total of the `sleep`s before the first `exit`; `None` for `sleep infinity`.
    pub sleeps: Option<Duration>,
    /// Whether any `sleep` was seen (a script without one finishes after the ready delay).
    pub has_sleep: bool,
    /// The exit code: from the first `exit`, else 0.
    pub exit_code: i32,
}

/// Interprets the concatenation of `command` and `args`.
pub fn interpret<'a>(words: impl IntoIterator<Item = &'a str>) -> Script {
    let mut text = String::new();
    for w in words {
        text.push_str(w);
        text.push(' ');
    }
    let mut script = Script {
        sleeps: Some(Duration::ZERO),
        has_sleep: false,
        exit_code: 0,
    };
    let cleaned: String = text
        .chars()
        .map(|c| {
            if matches!(c, '"' | '\'' | '(' | ')' | '{' | '}') {
                ' '
            } else {
                c
            }
        })
        .collect();
    let statements = cleaned
        .split(['\n', ';', '|', '&'])
        .map(|s| s.split_whitespace().collect::<Vec<_>>());
    for tokens in statements {
        let Some(pos) = tokens.iter().position(|t| *t == "sleep" || *t == "exit") else {
            continue;
        };
        let arg = tokens.get(pos + 1).copied();
        if tokens[pos] == "exit" {
            script.exit_code = arg.and_then(|a| a.parse().ok()).unwrap_or(0);
            return script;
        }
        script.has_sleep = true;
        match arg.map(parse_sleep_argument) {
            Some(Some(SleepFor::Finite(d))) => {
                script.sleeps = script.sleeps.map(|total| total + d);
            }
            Some(Some(SleepFor::Forever)) => script.sleeps = None,
            _ => {}
        }
    }
    script
}

enum SleepFor {
    Finite(Duration),
    Forever,
}

/// The operand of coreutils' `sleep` (`5`, `0.5`, `2m`, `infinity`): not a Go duration, so
/// not `sluice_api::k8s::duration`.
fn parse_sleep_argument(arg: &str) -> Option<SleepFor> {
    if arg == "infinity" || arg == "inf" {
        return Some(SleepFor::Forever);
    }
    let (digits, scale) = match arg.chars().last()? {
        's' => (&arg[..arg.len() - 1], 1.0),
        'm' => (&arg[..arg.len() - 1], 60.0),
        'h' => (&arg[..arg.len() - 1], 3600.0),
        _ => (arg, 1.0),
    };
    let secs: f64 = digits.parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(secs * scale)
        .ok()
        .map(SleepFor::Finite)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Outcome = (Option<Duration>, bool, i32);

    fn run(words: &[&str]) -> Outcome {
        let s = interpret(words.iter().copied());
        (s.sleeps, s.has_sleep, s.exit_code)
    }

    #[test]
    fn golden_scripts() {
        let ms = Duration::from_millis;
        let cases: &[(&[&str], Outcome)] = &[
            (&[], (Some(ms(0)), false, 0)),
            (&["echo", "hello"], (Some(ms(0)), false, 0)),
            (&["sh", "-c", "exit 3"], (Some(ms(0)), false, 3)),
            (&["sh", "-c", "sleep 2; exit 1"], (Some(ms(2000)), true, 1)),
            (&["sleep", "0.5"], (Some(ms(500)), true, 0)),
            (
                &["/bin/sh", "-c", "sleep 1 && sleep 1s"],
                (Some(ms(2000)), true, 0),
            ),
            (&["sh", "-c", "exit 0; sleep 100"], (Some(ms(0)), false, 0)),
            (&["sh", "-c", "sleep 1m"], (Some(ms(60_000)), true, 0)),
            (&["sleep", "infinity"], (None, true, 0)),
            (
                &["sh", "-c", "echo 'done'\nexit 42"],
                (Some(ms(0)), false, 42),
            ),
            (&["sh", "-c", "exit"], (Some(ms(0)), false, 0)),
            (&["sh", "-c", "sleep abc; exit 2"], (Some(ms(0)), true, 2)),
        ];
        for (words, want) in cases {
            assert_eq!(run(words), *want, "script {words:?}");
        }
    }
}
