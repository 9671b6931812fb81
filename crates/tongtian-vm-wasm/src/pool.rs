//! Reusing instances between calls, exactly as if each were fresh.
//!
//! Instantiating a module (a store, one function per import, a zeroed
//! linear memory, data segments) cost about a third of a token transfer on
//! wasmi. A call's observable starting state is the module's state right
//! after instantiation: its linear memory and its mutable globals (the
//! rest is immutable, or excluded below). So after a call the pool puts
//! both back from a snapshot taken at instantiation, and the next call
//! cannot tell the instance from a fresh one.
//!
//! A module is poolable when that snapshot covers all of its mutable state:
//! * no tables (so no `table.set`/`grow`/`copy`/`init` to undo) and no
//!   element segments;
//! * no passive data segments (so `data.drop` cannot change a later call);
//! * every mutable global readable: the pool exports each one under a
//!   reserved name, by rewriting the export section of the code it
//!   compiles (the stored code and its hash are untouched).
//!
//! A module that does not qualify is instantiated afresh for every call.
//! An instance whose memory grew is dropped rather than reused, since
//! memory cannot shrink.

use std::fmt::Write as _;
use wasmparser::{DataKind, ExternalKind, Parser, Payload, TypeRef};

/// Prefix of the exports the pool adds for mutable globals.
pub const GLOBAL_EXPORT_PREFIX: &str = "__tongtian_global_";

/// How to pool a module, decided from its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The code to compile: the original, or the original with its mutable
    /// globals exported.
    pub code: Vec<u8>,
    /// Names under which the mutable globals are exported.
    pub globals: Vec<String>,
}

/// The pooling plan of `code`, or `None` when the module keeps state the
/// pool cannot restore (or does not parse; validation reports that).
pub fn plan(code: &[u8]) -> Option<Plan> {
    let mut imported_globals = 0u32;
    let mut mutable: Vec<u32> = Vec::new();
    let mut exports: Vec<(String, ExternalKind, u32)> = Vec::new();
    let mut export_section: Option<std::ops::Range<usize>> = None;
    for payload in Parser::new(0).parse_all(code) {
        match payload.ok()? {
            Payload::ImportSection(r) => {
                for import in r {
                    match import.ok()?.ty {
                        TypeRef::Func(_) => {}
                        TypeRef::Global(g) if !g.mutable => imported_globals += 1,
                        // Imported tables, memories or mutable globals
                        // live outside the instance: never pooled.
                        _ => return None,
                    }
                }
            }
            Payload::TableSection(r) if r.count() > 0 => return None,
            Payload::ElementSection(r) if r.count() > 0 => return None,
            Payload::DataSection(r) => {
                for d in r {
                    if matches!(d.ok()?.kind, DataKind::Passive) {
                        return None;
                    }
                }
            }
            Payload::GlobalSection(r) => {
                for (i, g) in r.into_iter().enumerate() {
                    if g.ok()?.ty.mutable {
                        mutable.push(imported_globals + i as u32);
                    }
                }
            }
            Payload::ExportSection(r) => {
                export_section = Some(r.range());
                for e in r {
                    let e = e.ok()?;
                    if e.name.starts_with(GLOBAL_EXPORT_PREFIX) {
                        return None;
                    }
                    exports.push((e.name.to_string(), e.kind, e.index));
                }
            }
            _ => {}
        }
    }
    if mutable.is_empty() {
        return Some(Plan {
            code: code.to_vec(),
            globals: Vec::new(),
        });
    }
    // Contracts must export `call` and `memory`, so an export section
    // exists; without one, leave the module unpooled.
    let range = export_section?;
    let mut globals = Vec::with_capacity(mutable.len());
    for index in mutable {
        let mut name = String::from(GLOBAL_EXPORT_PREFIX);
        let _ = write!(name, "{index}");
        exports.push((name.clone(), ExternalKind::Global, index));
        globals.push(name);
    }
    let mut body = Vec::new();
    leb(&mut body, exports.len() as u32);
    for (name, kind, index) in &exports {
        leb(&mut body, name.len() as u32);
        body.extend_from_slice(name.as_bytes());
        body.push(kind_byte(*kind));
        leb(&mut body, *index);
    }
    // The section's content is `range`; before it sit the id byte and the
    // LEB128 size, which we re-encode for the new content.
    let header_start = section_start(code, range.start)?;
    let mut out = Vec::with_capacity(code.len() + body.len());
    out.extend_from_slice(&code[..header_start]);
    out.push(7);
    leb(&mut out, body.len() as u32);
    out.extend_from_slice(&body);
    out.extend_from_slice(&code[range.end..]);
    Some(Plan { code: out, globals })
}

/// Where the section whose content starts at `content` begins: walk the
/// top-level sections from the header.
fn section_start(code: &[u8], content: usize) -> Option<usize> {
    let mut at = 8;
    while at < code.len() {
        let start = at;
        at += 1;
        let (size, n) = read_leb(code.get(at..)?)?;
        at += n;
        if at == content {
            return Some(start);
        }
        at = at.checked_add(size as usize)?;
    }
    None
}

fn kind_byte(kind: ExternalKind) -> u8 {
    match kind {
        ExternalKind::Func => 0,
        ExternalKind::Table => 1,
        ExternalKind::Memory => 2,
        ExternalKind::Global => 3,
        ExternalKind::Tag => 4,
    }
}

fn leb(out: &mut Vec<u8>, mut v: u32) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_leb(b: &[u8]) -> Option<(u32, usize)> {
    let mut v = 0u32;
    for (i, byte) in b.iter().take(5).enumerate() {
        v |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_mutable_globals_and_refuses_tables_and_passive_data() {
        let code = wat::parse_str(
            r#"(module
                 (memory (export "memory") 1)
                 (global $sp (mut i32) (i32.const 100))
                 (global $k i32 (i32.const 7))
                 (global $n (mut i64) (i64.const 0))
                 (func (export "call") (global.set $sp (i32.const 1))))"#,
        )
        .unwrap();
        let p = plan(&code).unwrap();
        assert_eq!(
            p.globals,
            vec!["__tongtian_global_0", "__tongtian_global_2"]
        );
        let names: Vec<String> = Parser::new(0)
            .parse_all(&p.code)
            .filter_map(|pl| match pl.unwrap() {
                Payload::ExportSection(r) => Some(
                    r.into_iter()
                        .map(|e| e.unwrap().name.to_string())
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(
            names,
            vec![
                "memory",
                "call",
                "__tongtian_global_0",
                "__tongtian_global_2"
            ]
        );
        wasmi::Module::new(&wasmi::Engine::default(), &p.code[..]).unwrap();

        let no_globals =
            wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "call")))"#)
                .unwrap();
        assert_eq!(plan(&no_globals).unwrap().code, no_globals);

        let table = wat::parse_str(
            r#"(module (memory (export "memory") 1) (table 1 funcref) (func (export "call")))"#,
        )
        .unwrap();
        assert_eq!(plan(&table), None);
        let passive = wat::parse_str(
            r#"(module (memory (export "memory") 1) (data "x") (func (export "call")))"#,
        )
        .unwrap();
        assert_eq!(plan(&passive), None);
    }
}
