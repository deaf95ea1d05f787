//! Four-lane (AVX2) code for straight-line float64 arithmetic.
//!
//! Cranelift's x86-64 backend stops at 128-bit vectors, so a compiled loop
//! does two float64 operations per instruction where the CPU does four: a
//! program bound by its arithmetic (25 dependent additions per element,
//! a polynomial) runs at half the speed of a loop rustc vectorizes for
//! AVX2. Programs made only of `+ − × ÷ √`, negation, absolute value and
//! integer powers over contiguous or scalar float64 inputs are emitted here as well, as
//! one AVX2 loop: every intermediate in a `ymm` register, constants and
//! scalar inputs broadcast once before the loop. The Cranelift kernel runs
//! the last `n mod step` elements and every other program.
//!
//! Each operation is the same IEEE operation, on the same operands in the
//! same order, as the interpreter's, so results are identical bit for bit
//! (the property tests in `core/tests/jit.rs` check it).

use super::lower::{Access, Split};
use crate::dtype::{DType, Value};
use crate::kernel::ir::{Instr, Program};
use crate::op::{BinaryOp, UnaryOp};

/// Elements per vector.
const LANES: usize = 4;
/// Vectors per loop trip.
const UNROLL: usize = 2;
/// AVX2 vector registers.
const YMM: usize = 16;
/// The most inputs a wide kernel takes (the caller's pointer array is copied
/// onto the stack to offset it for the tail).
pub const MAX_INPUTS: usize = 16;

/// x86-64 general registers by number.
const RAX: u8 = 0;
const RCX: u8 = 1;
const RDX: u8 = 2;
const RSI: u8 = 6;
const RDI: u8 = 7;
/// Base registers of the input streams (`rdi`, the pointer array, last:
/// it is overwritten by the last base loaded). Never rbp, rsp, r12 or r13,
/// whose memory operands encode differently.
const BASES: [u8; 6] = [RCX, 8, 9, 10, 11, RDI];

type WideFn = unsafe extern "C" fn(*const *const u8, *mut u8, i64);

/// A compiled four-lane loop.
pub struct Wide {
    f: WideFn,
    code: Code,
    /// Holds the broadcast constants the code loads by address.
    _pool: Box<[u64]>,
    /// Whether each input is read as a stream (else a scalar).
    pub streams: Vec<bool>,
}

impl std::fmt::Debug for Wide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Wide({} bytes)", self.code.len)
    }
}

impl Wide {
    /// Elements per loop trip: [`Wide::call`]'s `n` is a multiple of it.
    pub const STEP: usize = LANES * UNROLL;

    /// Computes `n` elements (a positive multiple of [`Wide::STEP`]).
    ///
    /// # Safety
    /// As [`super::Compiled::call`], with `n` a positive multiple of `STEP`.
    pub unsafe fn call(&self, inputs: &[*const u8], out: *mut u8, n: usize) {
        debug_assert!(n > 0 && n.is_multiple_of(Self::STEP));
        // SAFETY: the caller's contract is the generated function's.
        unsafe { (self.f)(inputs.as_ptr(), out, n as i64) }
    }
}

static OFF: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether wide code may be generated here: an x86-64 CPU with AVX2, on
/// Linux (the System V calling convention and `mmap`), and not turned off
/// with `ACCEL_JIT_WIDE=0` or [`set_enabled`].
pub fn available() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let on = *ON.get_or_init(|| {
        let env = std::env::var("ACCEL_JIT_WIDE").map_or(true, |v| v != "0");
        env && host_has_avx2()
    });
    on && !OFF.load(std::sync::atomic::Ordering::Relaxed)
}

/// Turns wide code on or off for programs compiled from now on (the
/// benchmark compares the two; results are identical either way).
pub fn set_enabled(on: bool) {
    OFF.store(!on, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn host_has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn host_has_avx2() -> bool {
    false
}

/// Where a live register's value comes from in the loop.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Home {
    /// Broadcast before the loop into this ymm register.
    Pinned(u8),
    /// Computed in the loop.
    Temp,
}

/// The wide form of `p`, or None when it is outside the subset (or the
/// registers do not suffice).
pub fn build(p: &Program, access: &[Access], split: &Split) -> Option<Wide> {
    if !available() || split.is_hybrid() || split.staged.iter().any(|&s| s) {
        return None;
    }
    if p.inputs.len() > MAX_INPUTS || access.len() != p.inputs.len() {
        return None;
    }
    let plan = plan(p, access)?;
    // The loop body must fit in the registers the broadcasts leave.
    let regs = assign(p, &plan)?;
    let code = emit(p, &plan, &regs);
    let mapped = Code::new(&code)?;
    // SAFETY: `emit` generated a function of this signature in the System V
    // calling convention; it stays mapped as long as `self.code`.
    let f = unsafe { std::mem::transmute::<*const u8, WideFn>(mapped.ptr) };
    Some(Wide {
        f,
        code: mapped,
        _pool: plan.pool,
        streams: access.iter().map(|a| *a == Access::Contiguous).collect(),
    })
}

/// What [`emit`] needs: where every live value lives, the constant pool,
/// the stream bases.
struct Plan {
    live: Vec<bool>,
    homes: Vec<Option<Home>>,
    /// Broadcast sources of the pinned registers.
    pinned: Vec<(u8, Source)>,
    pool: Box<[u64]>,
    /// Base register of each streamed input.
    base: Vec<Option<u8>>,
    /// ymm registers holding the sign bit (negation), all but it (abs), 1.0
    /// (integer powers).
    sign: Option<u8>,
    magnitude: Option<u8>,
    one: Option<u8>,
    /// A register integer powers square their base in.
    scratch: Option<u8>,
    /// Registers below the pinned ones (and the scratch), for temporaries.
    free: u8,
}

#[derive(Clone, Copy, Debug)]
enum Source {
    /// Pool entry.
    Pool(usize),
    /// Scalar input.
    Input(usize),
}

/// Registers broadcast before the loop, taken from the top down, each
/// constant and scalar input once.
struct Pins {
    next: u8,
    pinned: Vec<(u8, Source)>,
    pool: Vec<u64>,
    constants: Vec<(u64, u8)>,
    scalars: Vec<(usize, u8)>,
}

impl Pins {
    fn take(&mut self, src: Source) -> Option<u8> {
        self.next = self.next.checked_sub(1)?;
        self.pinned.push((self.next, src));
        Some(self.next)
    }

    /// The register holding the float64 with these bits.
    fn constant(&mut self, bits: u64) -> Option<u8> {
        if let Some(&(_, r)) = self.constants.iter().find(|(b, _)| *b == bits) {
            return Some(r);
        }
        self.pool.push(bits);
        let r = self.take(Source::Pool(self.pool.len() - 1))?;
        self.constants.push((bits, r));
        Some(r)
    }

    /// The register holding scalar input `i`.
    fn scalar(&mut self, i: usize) -> Option<u8> {
        if let Some(&(_, r)) = self.scalars.iter().find(|(j, _)| *j == i) {
            return Some(r);
        }
        let r = self.take(Source::Input(i))?;
        self.scalars.push((i, r));
        Some(r)
    }
}

/// Registers the program reads, from the root back (operands precede their
/// users); None for a malformed program.
fn live_registers(p: &Program) -> Option<Vec<bool>> {
    let n = p.instrs.len();
    let mut live = vec![false; n];
    *live.get_mut(p.root as usize)? = true;
    for k in (0..n).rev() {
        if live[k] {
            for r in p.instrs[k].operands() {
                *live.get_mut(r as usize)? = true;
            }
        }
    }
    Some(live)
}

/// Which of the program's needs an instruction adds: `(sign, magnitude,
/// one, scratch)` masks and registers, or None outside the subset.
fn needs(ins: &Instr) -> Option<[bool; 4]> {
    Some(match ins {
        Instr::Unary(UnaryOp::Neg, _) => [true, false, false, false],
        Instr::Unary(UnaryOp::Abs, _) => [false, true, false, false],
        Instr::Unary(UnaryOp::Sqrt, _) | Instr::Unary(UnaryOp::Powi(2), _) => [false; 4],
        Instr::Unary(UnaryOp::Powi(_), _) => [false, false, true, true],
        Instr::Binary(BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div, ..) => {
            [false; 4]
        }
        _ => return None,
    })
}

/// Checks the subset, finds live registers and assigns the pinned ones.
fn plan(p: &Program, access: &[Access]) -> Option<Plan> {
    let live = live_registers(p)?;
    let mut homes = vec![None; p.instrs.len()];
    let mut pins = Pins {
        next: YMM as u8,
        pinned: Vec::new(),
        pool: Vec::new(),
        constants: Vec::new(),
        scalars: Vec::new(),
    };
    let mut base = vec![None; p.inputs.len()];
    let mut streams = 0;
    let mut wants = [false; 4];
    for (k, ins) in p.instrs.iter().enumerate() {
        if !live[k] {
            continue;
        }
        if p.dtypes[k] != DType::F64 {
            return None;
        }
        homes[k] = Some(match ins {
            Instr::Const(Value::F64(v)) => Home::Pinned(pins.constant(v.to_bits())?),
            Instr::Load { input } => {
                let i = *input as usize;
                if p.inputs.get(i)?.dtype != DType::F64 {
                    return None;
                }
                match access.get(i)? {
                    Access::Scalar => Home::Pinned(pins.scalar(i)?),
                    Access::Contiguous => {
                        if base[i].is_none() {
                            base[i] = Some(*BASES.get(streams)?);
                            streams += 1;
                        }
                        Home::Temp
                    }
                    Access::Strided => return None,
                }
            }
            other => {
                for (w, n) in wants.iter_mut().zip(needs(other)?) {
                    *w |= n;
                }
                Home::Temp
            }
        });
    }
    let [sign, magnitude, one, scratch] = wants;
    let sign = if sign {
        Some(pins.constant(1 << 63)?)
    } else {
        None
    };
    let magnitude = if magnitude {
        Some(pins.constant(!(1 << 63))?)
    } else {
        None
    };
    let one = if one {
        Some(pins.constant(1f64.to_bits())?)
    } else {
        None
    };
    let scratch = if scratch {
        pins.next = pins.next.checked_sub(1)?;
        Some(pins.next)
    } else {
        None
    };
    Some(Plan {
        live,
        homes,
        pinned: pins.pinned,
        pool: pins.pool.into_boxed_slice(),
        base,
        sign,
        magnitude,
        one,
        scratch,
        free: pins.next,
    })
}

/// The ymm register of every temporary, for one vector of the loop body,
/// from the `plan.free` lowest ones: a register is reused once its value's last
/// reader has been emitted. None when more would be live at once.
fn assign(p: &Program, plan: &Plan) -> Option<Vec<u8>> {
    let n = p.instrs.len();
    let mut last_use = vec![0usize; n];
    for k in 0..n {
        if plan.live[k] {
            for r in p.instrs[k].operands() {
                last_use[r as usize] = k;
            }
        }
    }
    last_use[p.root as usize] = n;
    let mut reg = vec![u8::MAX; n];
    let mut idle: Vec<u8> = (0..plan.free).rev().collect();
    for k in 0..n {
        if plan.homes[k] != Some(Home::Temp) {
            continue;
        }
        // Operands read for the last time free their registers first: a
        // VEX instruction may write one of its sources.
        let mut ops = p.instrs[k].operands();
        ops.sort_unstable();
        ops.dedup();
        for r in ops {
            let r = r as usize;
            if plan.homes[r] == Some(Home::Temp) && last_use[r] == k {
                idle.push(reg[r]);
            }
        }
        reg[k] = idle.pop()?;
    }
    Some(reg)
}

/// Register of live value `r` in the loop.
fn ymm_of(plan: &Plan, regs: &[u8], r: usize) -> u8 {
    match plan.homes[r] {
        Some(Home::Pinned(y)) => y,
        _ => regs[r],
    }
}

/// Machine code of the whole function: broadcasts, stream bases, then the
/// loop over `n` elements, `UNROLL` vectors a trip.
fn emit(p: &Program, plan: &Plan, regs: &[u8]) -> Vec<u8> {
    let mut a = Asm::default();
    // Broadcasts: pool entries by address, scalar inputs through their pointer.
    for &(y, src) in &plan.pinned {
        match src {
            Source::Pool(i) => {
                a.mov_imm64(RAX, plan.pool.as_ptr() as u64 + 8 * i as u64);
            }
            Source::Input(i) => a.load_pointer(RAX, RDI, i),
        }
        a.vbroadcastsd(y, RAX);
    }
    // Stream bases; rdi, the pointer array, is overwritten last.
    let mut order: Vec<(usize, u8)> = plan
        .base
        .iter()
        .enumerate()
        .filter_map(|(i, b)| b.map(|b| (i, b)))
        .collect();
    order.sort_by_key(|&(_, b)| b == RDI);
    for (i, b) in order {
        a.load_pointer(b, RDI, i);
    }
    a.xor_eax();
    let top = a.code.len();
    for u in 0..UNROLL {
        let disp = (u * LANES * 8) as i32;
        for (k, ins) in p.instrs.iter().enumerate() {
            if plan.homes[k] != Some(Home::Temp) {
                continue;
            }
            let d = regs[k];
            match ins {
                Instr::Load { input } => {
                    let b = plan.base[*input as usize].unwrap_or(RCX);
                    a.vmovupd_load(d, b, disp);
                }
                Instr::Unary(op, x) => {
                    let x = ymm_of(plan, regs, *x as usize);
                    match op {
                        UnaryOp::Sqrt => a.vex_op(SQRT, d, 0, x),
                        UnaryOp::Neg => a.vex_op(XOR, d, x, plan.sign.unwrap_or(x)),
                        UnaryOp::Abs => a.vex_op(AND, d, x, plan.magnitude.unwrap_or(x)),
                        UnaryOp::Powi(2) => a.vex_op(MUL, d, x, x),
                        UnaryOp::Powi(n) => {
                            let (one, scratch) = (plan.one.unwrap_or(x), plan.scratch.unwrap_or(x));
                            powi(&mut a, *n, d, x, one, scratch);
                        }
                        _ => {}
                    }
                }
                Instr::Binary(op, x, y) => {
                    let (x, y) = (
                        ymm_of(plan, regs, *x as usize),
                        ymm_of(plan, regs, *y as usize),
                    );
                    let opcode = match op {
                        BinaryOp::Add => ADD,
                        BinaryOp::Mul => MUL,
                        BinaryOp::Sub => SUB,
                        _ => DIV,
                    };
                    a.vex_op(opcode, d, x, y);
                }
                _ => {}
            }
        }
        a.vmovupd_store(RSI, disp, ymm_of(plan, regs, p.root as usize));
    }
    a.add_rax((LANES * UNROLL) as i8);
    a.cmp_rax_rdx();
    a.jb(top);
    a.code.extend_from_slice(&[0xC5, 0xF8, 0x77, 0xC3]); // vzeroupper; ret
    a.code
}

/// Opcodes (VEX.256.66.0F) of the packed float64 operations.
const SQRT: u8 = 0x51;
const AND: u8 = 0x54;
const XOR: u8 = 0x57;
const ADD: u8 = 0x58;
const MUL: u8 = 0x59;
const SUB: u8 = 0x5C;
const DIV: u8 = 0x5E;
const MOVAPD: u8 = 0x28;

/// `d = x**n` as the interpreter computes it: `o = 1`, then square and
/// multiply over the bits of |n| (`o * base`, `base * base`), and `1 / o`
/// for negative n. The base is squared in `scratch`, so `d` may be `x`.
fn powi(a: &mut Asm, n: i32, d: u8, x: u8, one: u8, scratch: u8) {
    let mut e = n.unsigned_abs();
    let mut o = one;
    a.vex_op(MOVAPD, scratch, 0, x);
    while e > 0 {
        if e & 1 == 1 {
            a.vex_op(MUL, d, o, scratch);
            o = d;
        }
        e >>= 1;
        if e > 0 {
            a.vex_op(MUL, scratch, scratch, scratch);
        }
    }
    if o != d {
        a.vex_op(MOVAPD, d, 0, o);
    }
    if n < 0 {
        a.vex_op(DIV, d, one, d);
    }
}

/// A tiny x86-64 assembler: the handful of instructions the loop uses.
#[derive(Default)]
struct Asm {
    code: Vec<u8>,
}

impl Asm {
    /// A three-byte VEX prefix (0F map, 66 prefix, 256-bit) and opcode:
    /// `op ymm(reg), ymm(vvvv), ymm(rm)`.
    fn vex_op(&mut self, opcode: u8, reg: u8, vvvv: u8, rm: u8) {
        self.vex(reg, 0, rm, 1, vvvv);
        self.code.push(opcode);
        self.code.push(0xC0 | ((reg & 7) << 3) | (rm & 7));
    }

    /// `C4 RXB.mmmmm W.vvvv.L.pp` with W = 0, L = 1 (256-bit), pp = 66.
    fn vex(&mut self, reg: u8, index: u8, base: u8, map: u8, vvvv: u8) {
        let rxb = ((!reg >> 3) & 1) << 7 | ((!index >> 3) & 1) << 6 | ((!base >> 3) & 1) << 5;
        self.code.push(0xC4);
        self.code.push(rxb | map);
        self.code.push(((!vvvv & 0xF) << 3) | 0b100 | 0b01);
    }

    /// ModRM + SIB for `[base + rax*8 + disp]`.
    fn indexed(&mut self, reg: u8, base: u8, disp: i32) {
        let (md, wide) = match disp {
            0 if base & 7 != 5 => (0b00, None),
            -128..=127 => (0b01, Some(false)),
            _ => (0b10, Some(true)),
        };
        self.code.push(md << 6 | (reg & 7) << 3 | 0b100);
        self.code.push(0b11 << 6 | (RAX & 7) << 3 | (base & 7));
        match wide {
            Some(false) => self.code.push(disp as i8 as u8),
            Some(true) => self.code.extend_from_slice(&disp.to_le_bytes()),
            None => {}
        }
    }

    /// `vmovupd ymm(d), [base + rax*8 + disp]`.
    fn vmovupd_load(&mut self, d: u8, base: u8, disp: i32) {
        self.vex(d, RAX, base, 1, 0);
        self.code.push(0x10);
        self.indexed(d, base, disp);
    }

    /// `vmovupd [base + rax*8 + disp], ymm(s)`.
    fn vmovupd_store(&mut self, base: u8, disp: i32, s: u8) {
        self.vex(s, RAX, base, 1, 0);
        self.code.push(0x11);
        self.indexed(s, base, disp);
    }

    /// `vbroadcastsd ymm(d), [ptr]` (0F38 map, W0).
    fn vbroadcastsd(&mut self, d: u8, ptr: u8) {
        self.vex(d, 0, ptr, 2, 0);
        self.code.push(0x19);
        // [ptr] with mod 00: ptr is never rsp/rbp/r12/r13 here (it is rax).
        self.code.push((d & 7) << 3 | (ptr & 7));
    }

    /// `mov dst, [array + 8 * index]` (64-bit).
    fn load_pointer(&mut self, dst: u8, array: u8, index: usize) {
        self.code
            .push(0x48 | ((dst >> 3) & 1) << 2 | ((array >> 3) & 1));
        self.code.push(0x8B);
        let disp = (8 * index) as i32;
        if disp < 128 {
            self.code.push(0b01 << 6 | (dst & 7) << 3 | (array & 7));
            self.code.push(disp as u8);
        } else {
            self.code.push(0b10 << 6 | (dst & 7) << 3 | (array & 7));
            self.code.extend_from_slice(&disp.to_le_bytes());
        }
    }

    /// `mov dst, imm64`.
    fn mov_imm64(&mut self, dst: u8, imm: u64) {
        self.code.push(0x48 | ((dst >> 3) & 1));
        self.code.push(0xB8 + (dst & 7));
        self.code.extend_from_slice(&imm.to_le_bytes());
    }

    /// `xor eax, eax`.
    fn xor_eax(&mut self) {
        self.code.extend_from_slice(&[0x31, 0xC0]);
    }

    /// `add rax, imm8`.
    fn add_rax(&mut self, imm: i8) {
        self.code.extend_from_slice(&[0x48, 0x83, 0xC0, imm as u8]);
    }

    /// `cmp rax, rdx`.
    fn cmp_rax_rdx(&mut self) {
        self.code
            .extend_from_slice(&[0x48, 0x39, 0xC0 | (RDX << 3) | RAX]);
    }

    /// `jb target` (rel32, backwards).
    fn jb(&mut self, target: usize) {
        let end = self.code.len() + 6;
        let rel = target as i64 - end as i64;
        self.code.extend_from_slice(&[0x0F, 0x82]);
        self.code.extend_from_slice(&(rel as i32).to_le_bytes());
    }
}

/// Executable memory holding one function.
struct Code {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the mapping is immutable (read + execute) once built.
unsafe impl Send for Code {}
// SAFETY: as above: nothing writes it after `new`.
unsafe impl Sync for Code {}

impl Code {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    fn new(bytes: &[u8]) -> Option<Code> {
        let len = bytes.len().next_multiple_of(4096);
        // SAFETY: a fresh private anonymous mapping, filled then made
        // read + execute; nothing else refers to it.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                return None;
            }
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p as *mut u8, bytes.len());
            if libc::mprotect(p, len, libc::PROT_READ | libc::PROT_EXEC) != 0 {
                libc::munmap(p, len);
                return None;
            }
            Some(Code {
                ptr: p as *const u8,
                len,
            })
        }
    }

    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    fn new(_: &[u8]) -> Option<Code> {
        None
    }
}

impl Drop for Code {
    fn drop(&mut self) {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        // SAFETY: the mapping `new` made; its function can no longer be
        // called (it goes away with the `Wide` that owns both).
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.len);
        }
    }
}
