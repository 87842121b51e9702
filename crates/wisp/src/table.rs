//! Text tables as kubectl and kn print them.
//!
//! Both tools align columns with Go's `text/tabwriter` (elastic tab stops), so this module ports
//! its algorithm: a cell is text terminated by a tab, the text after a line's last tab is not
//! part of any column, and a column's width is decided per block of consecutive lines that
//! have a cell in it. kubectl/kn tables use min width 6 and padding 3; kn's `describe` uses min
//! width 0 and padding 2. [`render_table`] turns the API server's `meta.k8s.io/v1` `Table`
//! into kubectl's output, so the columns themselves are defined once, on the server.

use std::time::SystemTime;

use serde_json::Value;

use crate::age;

/// Min width and padding of kubectl's and kn's list tables.
pub const TABLE_MIN_WIDTH: usize = 6;
pub const TABLE_PADDING: usize = 3;

/// Aligns tab-separated `text` like Go's `tabwriter.NewWriter(out, minwidth, _, padding, ' ', 0)`
/// followed by one `Flush`. Trailing blanks of each line are trimmed.
pub fn tabwriter(text: &str, minwidth: usize, padding: usize) -> String {
    let ends_with_newline = text.ends_with('\n');
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<Vec<&str>> = body.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    let fmt = Formatter {
        lines: &lines,
        minwidth,
        padding,
    };
    fmt.format(&mut widths, 0, lines.len(), &mut out);
    let mut trimmed: String = out
        .split('\n')
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n");
    if ends_with_newline {
        trimmed.push('\n');
    }
    trimmed
}

struct Formatter<'a> {
    lines: &'a [Vec<&'a str>],
    minwidth: usize,
    padding: usize,
}

fn width(cell: &str) -> usize {
    cell.chars().count()
}

impl Formatter<'_> {
    /// Go's `(*Writer).format`: finds the blocks of `column = widths.len()` between `line0`
    /// and `line1`, sizes each, and recurses into the columns to their right.
    fn format(&self, widths: &mut Vec<usize>, line0: usize, line1: usize, out: &mut String) {
        let column = widths.len();
        let mut line0 = line0;
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            // A block of lines with a cell in this column starts here.
            self.write_lines(widths, line0, this, out);
            line0 = this;
            let mut w = self.minwidth;
            while this < line1 && column + 1 < self.lines[this].len() {
                w = w.max(width(self.lines[this][column]) + self.padding);
                this += 1;
            }
            widths.push(w);
            self.format(widths, line0, this, out);
            widths.pop();
            line0 = this;
        }
        self.write_lines(widths, line0, line1, out);
    }

    fn write_lines(&self, widths: &[usize], line0: usize, line1: usize, out: &mut String) {
        for i in line0..line1 {
            for (j, cell) in self.lines[i].iter().enumerate() {
                out.push_str(cell);
                if let Some(w) = widths.get(j) {
                    out.extend(std::iter::repeat_n(' ', w.saturating_sub(width(cell))));
                }
            }
            if i + 1 < self.lines.len() {
                out.push('\n');
            }
        }
    }
}

/// Rows of cells (header first, if any) aligned as a kubectl/kn list table.
pub fn render_rows(rows: &[Vec<String>]) -> String {
    let mut text = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| c.replace(['\t', '\n'], " ")).collect();
        text.push_str(&cells.join("\t"));
        text.push('\n');
    }
    tabwriter(&text, TABLE_MIN_WIDTH, TABLE_PADDING)
}

/// How to print a server `Table`.
#[derive(Debug, Clone, Copy)]
pub struct TableOptions {
    /// `-o wide`: also the columns with priority > 0.
    pub wide: bool,
    pub no_headers: bool,
    /// `-A`: a NAMESPACE column first, from each row's object.
    pub with_namespace: bool,
    pub now: SystemTime,
}

/// One printable cell, as kubectl's table printer writes it: strings up to their first line
/// break (then `...`), other values with their JSON spelling, null as nothing.
fn cell_text(cell: &Value) -> String {
    match cell {
        Value::Null => String::new(),
        Value::String(s) => match s.find(['\n', '\r', '\u{c}']) {
            Some(i) => format!("{}...", &s[..i]),
            None => s.clone(),
        },
        other => other.to_string(),
    }
}

/// The column definitions of a server table.
fn column_defs(table: &Value) -> Vec<(String, i64)> {
    table
        .get("columnDefinitions")
        .and_then(Value::as_array)
        .map(|cols| {
            cols.iter()
                .map(|c| {
                    let name = c
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    let priority = c.get("priority").and_then(Value::as_i64).unwrap_or(0);
                    (name, priority)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The rows of one or more server tables (same kind), as `[header, rows...]` ready for
/// [`render_rows`]. An `AGE` column is added from each row's `metadata.creationTimestamp`
/// when the server defines none.
pub fn table_rows(tables: &[Value], opts: &TableOptions) -> Vec<Vec<String>> {
    let Some(first) = tables.first() else {
        return Vec::new();
    };
    let cols = column_defs(first);
    let shown: Vec<usize> = (0..cols.len())
        .filter(|i| opts.wide || cols[*i].1 == 0)
        .collect();
    let add_age = !cols.iter().any(|(n, _)| n.eq_ignore_ascii_case("age"));
    let mut out = Vec::new();
    if !opts.no_headers {
        let mut header = Vec::new();
        if opts.with_namespace {
            header.push("NAMESPACE".to_string());
        }
        header.extend(shown.iter().map(|i| cols[*i].0.to_uppercase()));
        if add_age {
            header.push("AGE".to_string());
        }
        out.push(header);
    }
    for table in tables {
        let rows = table
            .get("rows")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for row in rows {
            let cells = row
                .get("cells")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let meta = row.pointer("/object/metadata");
            let mut line = Vec::new();
            if opts.with_namespace {
                let ns = meta
                    .and_then(|m| m.get("namespace"))
                    .and_then(Value::as_str);
                line.push(ns.unwrap_or("").to_string());
            }
            line.extend(
                shown
                    .iter()
                    .map(|i| cells.get(*i).map(cell_text).unwrap_or_default()),
            );
            if add_age {
                let ts = meta
                    .and_then(|m| m.get("creationTimestamp"))
                    .and_then(Value::as_str);
                line.push(age::table_age(ts, opts.now));
            }
            out.push(line);
        }
    }
    out
}

/// Number of rows over all tables.
pub fn row_count(tables: &[Value]) -> usize {
    tables
        .iter()
        .map(|t| t.get("rows").and_then(Value::as_array).map_or(0, Vec::len))
        .sum()
}

/// A server table (or several, for several names) printed like kubectl.
pub fn render_table(tables: &[Value], opts: &TableOptions) -> String {
    render_rows(&table_rows(tables, opts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    #[test]
    fn tabwriter_aligns_like_go() {
        // kubectl's settings: min width 6, padding 3; the last cell is never padded.
        let text = "NAME\tURL\tREADY\nhello\thttp://hello.default.localhost\tTrue\na\tb\t\n";
        let want = "NAME    URL                              READY\n\
                    hello   http://hello.default.localhost   True\n\
                    a       b\n";
        assert_eq!(tabwriter(text, 6, 3), want);
    }

    #[test]
    fn tabwriter_blocks_end_at_lines_without_the_column() {
        // kn describe (min width 0, padding 2): a line without tabs ends every block.
        let text = "Name:\thello\nNamespace:\tdefault\n\n  100%\t@latest (hello-00001) [1] (1m)\n  \tImage:\tbusybox\n  \tReplicas:\t1/1\n";
        let want = [
            format!("{:<12}{}", "Name:", "hello"),
            format!("{:<12}{}", "Namespace:", "default"),
            String::new(),
            format!("{:<8}{}", "  100%", "@latest (hello-00001) [1] (1m)"),
            format!("{:<8}{:<11}{}", "", "Image:", "busybox"),
            format!("{:<8}{:<11}{}", "", "Replicas:", "1/1"),
        ]
        .join("\n")
            + "\n";
        assert_eq!(tabwriter(text, 0, 2), want);
    }

    #[test]
    fn tabwriter_handles_unicode_and_no_trailing_newline() {
        assert_eq!(tabwriter("a\tb\nääää\tc", 0, 1), "a    b\nääää c");
        assert_eq!(tabwriter("", 0, 1), "");
    }

    fn server_table() -> Value {
        json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "columnDefinitions": [
                {"name": "Name", "type": "string", "priority": 0},
                {"name": "URL", "type": "string", "priority": 0},
                {"name": "LatestCreated", "type": "string", "priority": 0},
                {"name": "Hidden", "type": "string", "priority": 1},
                {"name": "Ready", "type": "string", "priority": 0},
                {"name": "Reason", "type": "string", "priority": 0}
            ],
            "rows": [
                {"cells": ["hello", "http://hello.default.localhost", "hello-00001", "x", "Unknown", ""],
                 "object": {"metadata": {"name": "hello", "namespace": "default",
                                         "creationTimestamp": "2026-01-02T03:04:05Z"}}},
                {"cells": ["b", null, 3, "y", "True\nmore", ""],
                 "object": {"metadata": {"name": "b", "namespace": "team"}}}
            ]
        })
    }

    #[test]
    fn renders_server_tables_like_kubectl() {
        let now = age::parse_timestamp("2026-01-02T03:04:05Z").unwrap_or(SystemTime::UNIX_EPOCH)
            + Duration::from_secs(300);
        let opts = TableOptions {
            wide: false,
            no_headers: false,
            with_namespace: false,
            now,
        };
        let want = "NAME    URL                              LATESTCREATED   READY     REASON   AGE\n\
                    hello   http://hello.default.localhost   hello-00001     Unknown            5m\n\
                    b                                        3               True...            <unknown>\n";
        assert_eq!(render_table(&[server_table()], &opts), want);

        let opts = TableOptions {
            wide: true,
            no_headers: true,
            with_namespace: true,
            now,
        };
        let want = "default   hello   http://hello.default.localhost   hello-00001   x     Unknown         5m\n\
                    team      b                                        3             y     True...         <unknown>\n";
        assert_eq!(render_table(&[server_table()], &opts), want);
        assert_eq!(row_count(&[server_table(), server_table()]), 4);
    }

    #[test]
    fn keeps_the_servers_age_column() {
        let t = json!({
            "columnDefinitions": [{"name": "Name"}, {"name": "Status"}, {"name": "Age"}],
            "rows": [{"cells": ["default", "Active", "3d"]}]
        });
        let opts = TableOptions {
            wide: false,
            no_headers: false,
            with_namespace: false,
            now: SystemTime::UNIX_EPOCH,
        };
        assert_eq!(
            render_table(&[t], &opts),
            "NAME      STATUS   AGE\ndefault   Active   3d\n"
        );
    }
}
