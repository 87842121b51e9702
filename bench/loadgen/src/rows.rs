//! Table rows, verdicts and tallies shared by the data-plane and image benchmarks' reports.

pub(crate) fn verdict(ok: bool, quick: bool, detail: &str) -> String {
    if quick {
        return "n/a (quick run)".into();
    }
    let head = if ok { "**met**" } else { "**NOT met**" };
    if detail.is_empty() {
        head.into()
    } else {
        format!("{head} ({detail})")
    }
}

pub(crate) struct Row {
    pub(crate) what: String,
    pub(crate) value: String,
    pub(crate) spread: String,
    pub(crate) reference: String,
    pub(crate) target: String,
    pub(crate) verdict: String,
}

impl Row {
    pub(crate) fn new(what: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            what: what.into(),
            value: value.into(),
            spread: "—".into(),
            reference: String::new(),
            target: String::new(),
            verdict: String::new(),
        }
    }
    pub(crate) fn spread(mut self, s: impl Into<String>) -> Row {
        self.spread = s.into();
        self
    }
    pub(crate) fn reference(mut self, s: impl Into<String>) -> Row {
        self.reference = s.into();
        self
    }
    pub(crate) fn target(mut self, t: impl Into<String>, v: String) -> Row {
        self.target = t.into();
        self.verdict = v;
        self
    }
}

/// Tallies of judged rows.
#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) met: Vec<String>,
    pub(crate) missed: Vec<String>,
}

impl Tally {
    pub(crate) fn judge(&mut self, what: &str, ok: bool) -> bool {
        if ok {
            self.met.push(what.to_owned());
        } else {
            self.missed.push(what.to_owned());
        }
        ok
    }
}

/// The table of `rows`, then (in a full run) how many targets were met and which were missed.
pub(crate) fn render(rows: &[Row], tally: &Tally, quick: bool) -> String {
    let mut out = String::new();
    out.push_str("| measure | wisp | spread | limit / reference | target | verdict |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- |\n");
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            row.what, row.value, row.spread, row.reference, row.target, row.verdict
        ));
    }
    if !quick {
        out.push_str(&format!(
            "\nTargets met: {} of {}{}.\n",
            tally.met.len(),
            tally.met.len() + tally.missed.len(),
            if tally.missed.is_empty() {
                String::new()
            } else {
                format!("; missed: {}", tally.missed.join(", "))
            }
        ));
    }
    out
}
