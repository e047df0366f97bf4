//! Terminal or pipe: colour and live redraw only when a person is watching.

use std::io::IsTerminal as _;

/// The colours the tree uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Green,
    Red,
    Yellow,
    Blue,
    Gray,
    Bold,
}

impl Color {
    fn code(self) -> &'static str {
        match self {
            Color::Green => "32",
            Color::Red => "31",
            Color::Yellow => "33",
            Color::Blue => "94",
            Color::Gray => "90",
            Color::Bold => "1",
        }
    }
}

/// Clear the screen and go home (for redraws).
pub const CLEAR: &str = "\x1b[H\x1b[2J";

/// Whether output gets colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// Colour when stdout is a terminal, unless `--no-color`, `NO_COLOR` or `TERM=dumb`.
    pub fn detect(no_color: bool) -> Style {
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        let opted_out = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: stdout_is_terminal() && !no_color && !dumb && !opted_out,
        }
    }

    /// Plain text.
    #[cfg(test)]
    pub fn plain() -> Style {
        Style { color: false }
    }

    /// `text` in `color` (unchanged without colour).
    pub fn paint(&self, text: &str, color: Option<Color>) -> String {
        match color {
            Some(c) if self.color && !text.is_empty() => {
                format!("\x1b[{}m{text}\x1b[0m", c.code())
            }
            _ => text.to_string(),
        }
    }
}

/// Whether a person is watching stdout.
pub fn stdout_is_terminal() -> bool {
    std::io::stdout().is_terminal()
}
