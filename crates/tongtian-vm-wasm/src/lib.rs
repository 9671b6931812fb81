//! x
#![allow(missing_docs)]
pub struct Env<'a> {
    pub v: &'a mut Vec<u8>,
}
pub fn run<'a>(v: &'a mut Vec<u8>) {
    let engine = wasmi::Engine::default();
    let mut store = wasmi::Store::new(&engine, Env { v });
    let mut linker = wasmi::Linker::<Env<'a>>::new(&engine);
    linker
        .func_wrap("env", "f", |mut c: wasmi::Caller<'_, Env<'a>>, x: i32| {
            c.data_mut().v.push(x as u8);
        })
        .unwrap();
    let _ = &mut store;
}
