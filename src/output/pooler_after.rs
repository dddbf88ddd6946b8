//! A pooler's client side after a change, as text: whether its own setting applies the target and whom its log
//! (`--pgbouncer-log`) shows refused. Shared by `check` and `snapshot`; every outside string goes through
//! [`safe::terminal`].

use std::io::Write;

use super::safe;
use crate::analysis::after::PoolerAfter;

/// One heading line per pooler, then one line per refused address.
pub fn write_lines(p: &PoolerAfter, out: &mut dyn Write) -> std::io::Result<()> {
    use safe::terminal as t;
    writeln!(
        out,
        "Pooler {} {} = {}: {}",
        t(&p.pooler),
        p.setting,
        t(p.value.as_deref().unwrap_or("unknown")),
        if p.in_force {
            "in force; refused clients from its log"
        } else {
            "the target is not in force there"
        }
    )?;
    for f in &p.refused {
        let who = if f.address == crate::analysis::ledger::UNKNOWN_ADDRESS {
            "PgBouncer logs no address for a failed handshake".to_string()
        } else {
            t(&f.attribution).into_owned()
        };
        writeln!(
            out,
            "  ✖ {} — {} attempt(s), last {}, refused by {}: {} ({who})",
            t(&f.address),
            f.attempts,
            crate::format::timestamp(f.last_seen),
            t(&f.refused_by),
            t(f.short_reason())
        )?;
    }
    Ok(())
}
