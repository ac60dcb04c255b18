//! A flat token tape over one JSON document: the fast FHIR path's parser.
//!
//! One pass over the bytes records every value as a [`Tok`] (kind, byte span, the index just
//! past its subtree), with no allocation per value; objects and arrays are walked by jumping
//! from sibling to sibling, so the de-identification walk can look at an object's keys before
//! it decides what the object is (as the tree walk does) without building a tree.
//!
//! The tape accepts exactly the documents `serde_json` accepts, or fewer: anything it does
//! not handle itself (a key with an escape, a duplicate key, a lone surrogate escape, nesting
//! past 127 levels, a number `serde_json` would reject) makes [`Tape::parse`] return `None`,
//! and the caller falls back to the `serde_json` tree path, which reports the document as it
//! always has.
//!
//! It also knows which spans are already in `serde_json`'s compact form (no whitespace,
//! strings escaped as `serde_json` escapes them, numbers printed as `serde_json` prints them),
//! so unchanged values are copied to the output as they are, and the output is byte for byte
//! what `serde_json::to_vec` of the parsed tree would write.

use std::borrow::Cow;

/// An object.
pub(crate) const OBJ: u8 = 1;
/// An array.
pub(crate) const ARR: u8 = 2;
/// A string (an object key is a string token too).
pub(crate) const STR: u8 = 3;
/// A number.
pub(crate) const NUM: u8 = 4;
/// `true`.
pub(crate) const TRUE: u8 = 5;
/// `false`.
pub(crate) const FALSE: u8 = 6;
/// `null`.
pub(crate) const NULL: u8 = 7;

/// A string holds at least one escape.
const F_ESC: u8 = 1;
/// The raw span is not what `serde_json` would write for this value.
const F_NONCANON: u8 = 2;
/// A number whose `serde_json` form is in [`Tape::side`] at `start..end`.
const F_SIDE: u8 = 4;

/// Keys whose presence in an object decides its inferred FHIR type; an object token's `aux`
/// holds one bit per such key among its members.
pub(crate) mod keybit {
    pub const DIV: u16 = 1 << 0;
    pub const FAMILY: u16 = 1 << 1;
    pub const GIVEN: u16 = 1 << 2;
    pub const PREFIX: u16 = 1 << 3;
    pub const SUFFIX: u16 = 1 << 4;
    pub const TEXT: u16 = 1 << 5;
    pub const USE: u16 = 1 << 6;
    pub const CONTENT_TYPE: u16 = 1 << 7;
    pub const DATA: u16 = 1 << 8;
    pub const URL: u16 = 1 << 9;
    pub const REFERENCE: u16 = 1 << 10;
    pub const CODING: u16 = 1 << 11;
    pub const SYSTEM: u16 = 1 << 12;
    pub const CODE: u16 = 1 << 13;
    pub const VALUE: u16 = 1 << 14;
    pub const UNIT: u16 = 1 << 15;

    /// The bit of a key, 0 for the others.
    pub fn of(key: &[u8]) -> u16 {
        match key {
            b"div" => DIV,
            b"family" => FAMILY,
            b"given" => GIVEN,
            b"prefix" => PREFIX,
            b"suffix" => SUFFIX,
            b"text" => TEXT,
            b"use" => USE,
            b"contentType" => CONTENT_TYPE,
            b"data" => DATA,
            b"url" => URL,
            b"reference" => REFERENCE,
            b"coding" => CODING,
            b"system" => SYSTEM,
            b"code" => CODE,
            b"value" => VALUE,
            b"unit" => UNIT,
            _ => 0,
        }
    }
}

/// One value on the tape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tok {
    /// Strings: first byte of the content (after the quote); numbers: first byte (or the
    /// start in the side buffer); containers: the opening bracket.
    start: u32,
    /// Strings: the closing quote; numbers: one past the last byte; containers: one past the
    /// closing bracket.
    end: u32,
    /// The index of the token after this value's subtree (its next sibling, or its parent's
    /// next sibling...).
    next: u32,
    kind: u8,
    flags: u8,
    /// Objects: the [`keybit`]s of their keys.
    aux: u16,
}

/// The tape of one document.
#[derive(Debug)]
pub(crate) struct Tape<'a> {
    src: &'a str,
    toks: Vec<Tok>,
    /// `serde_json`'s form of numbers whose input text differs from it.
    side: String,
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;
const SPACES: u64 = LO * 0x20;

/// Bits set (at bit 7 of the byte) for the bytes of `w` that end or interrupt a string
/// (`"`, `\`, a control character); exact for the lowest such byte, which is all we use.
#[inline(always)]
fn special(w: u64) -> u64 {
    let quote = w ^ (LO * u64::from(b'"'));
    let slash = w ^ (LO * u64::from(b'\\'));
    let zq = quote.wrapping_sub(LO) & !quote;
    let zs = slash.wrapping_sub(LO) & !slash;
    let ctl = w.wrapping_sub(SPACES) & !w;
    (zq | zs | ctl) & HI
}

/// The eight bytes at `i` (little-endian), if there are eight.
#[inline(always)]
fn word(b: &[u8], i: usize) -> Option<u64> {
    let c = b.get(i..i + 8)?;
    let mut w = [0u8; 8];
    w.copy_from_slice(c);
    Some(u64::from_le_bytes(w))
}

/// A cheap signature of a key for the duplicate-key check (equal keys have equal signatures;
/// a match is confirmed byte by byte).
#[inline(always)]
fn signature(k: &[u8]) -> u64 {
    let at = |i: usize| u64::from(k.get(i).copied().unwrap_or(0));
    let n = k.len();
    (n as u64) | at(0) << 16 | at(n / 2) << 24 | at(n.wrapping_sub(1)) << 32 | at(1) << 40
}

/// Skips whitespace from `pos`.
#[inline(always)]
fn skip_ws(b: &[u8], mut pos: usize) -> usize {
    match b.get(pos) {
        Some(&c) if c > b' ' => return pos,
        // `": "`, the usual spacing after a key.
        Some(b' ') if b.get(pos + 1).is_some_and(|&c| c > b' ') => return pos + 1,
        // A line break: the indentation follows.
        Some(b'\n') => pos += 1,
        None => return pos,
        _ => {}
    }
    loop {
        // Runs of indentation, eight at a time.
        if let Some(w) = word(b, pos) {
            let x = w ^ SPACES;
            if x == 0 {
                pos += 8;
                continue;
            }
            pos += (x.trailing_zeros() / 8) as usize;
        }
        match b.get(pos) {
            Some(b' ' | b'\n' | b'\r' | b'\t') => pos += 1,
            _ => return pos,
        }
    }
}

/// From `i` (inside a string) to the next `"`, `\` or control character.
#[inline(always)]
fn scan_str(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match word(b, i) {
            Some(w) => {
                let m = special(w);
                if m != 0 {
                    return Some(i + (m.trailing_zeros() / 8) as usize);
                }
                i += 8;
            }
            None => {
                let k = b
                    .get(i..)?
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
                return Some(i + k);
            }
        }
    }
}

/// The string whose content starts at `start`: (its closing quote, flags).
#[inline(always)]
fn string(b: &[u8], start: usize) -> Option<(usize, u8)> {
    let mut i = start;
    let mut flags = 0;
    loop {
        let j = scan_str(b, i)?;
        match b.get(j).copied()? {
            b'"' => return Some((j, flags)),
            b'\\' => {
                flags |= F_ESC;
                let (len, canon) = escape(b, j)?;
                if !canon {
                    flags |= F_NONCANON;
                }
                i = j + len;
            }
            // A raw control character: serde_json rejects it.
            _ => return None,
        }
    }
}

/// Validates the escape at `j` (a backslash): (its length, whether serde_json writes it the
/// same way).
fn escape(b: &[u8], j: usize) -> Option<(usize, bool)> {
    match b.get(j + 1).copied()? {
        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => Some((2, true)),
        b'/' => Some((2, false)),
        b'u' => {
            let (n, lower) = hex4(b.get(j + 2..j + 6)?)?;
            match n {
                0xD800..=0xDBFF => {
                    // A leading surrogate must be followed by a trailing one.
                    if b.get(j + 6..j + 8)? != b"\\u" {
                        return None;
                    }
                    let (n2, _) = hex4(b.get(j + 8..j + 12)?)?;
                    if !(0xDC00..=0xDFFF).contains(&n2) {
                        return None;
                    }
                    Some((12, false))
                }
                0xDC00..=0xDFFF => None,
                0x08 | 0x0C | 0x0A | 0x0D | 0x09 => Some((6, false)),
                0..0x20 => Some((6, lower)),
                _ => Some((6, false)),
            }
        }
        _ => None,
    }
}

/// An open container on the parser's stack.
#[derive(Clone, Copy)]
struct Open {
    tok: usize,
    is_obj: bool,
    /// Everything in it so far is in serde_json's form.
    canon: bool,
}

struct Parser<'b> {
    b: &'b [u8],
    toks: Vec<Tok>,
    side: String,
    stack: Vec<Open>,
    /// Keys of the open objects (signature, start, end), for the duplicate check.
    keys: Vec<(u64, u32, u32)>,
    /// Where each open object's keys start in `keys`.
    key_base: Vec<usize>,
}

/// The nesting depth past which the tape gives up (serde_json's limit is 128).
const MAX_DEPTH: usize = 127;

impl Parser<'_> {
    #[inline(always)]
    fn noncanon(&mut self) {
        if let Some(top) = self.stack.last_mut() {
            top.canon = false;
        }
    }

    /// Skips whitespace inside a container (which makes it non-canonical).
    #[inline(always)]
    fn ws_in(&mut self, pos: usize) -> usize {
        let p = skip_ws(self.b, pos);
        if p != pos {
            self.noncanon();
        }
        p
    }

    #[inline(always)]
    fn push(&mut self, kind: u8, start: usize, end: usize, flags: u8) {
        let next = self.toks.len() as u32 + 1;
        self.toks.push(Tok {
            start: start as u32,
            end: end as u32,
            next,
            kind,
            flags,
            aux: 0,
        });
    }

    #[inline(always)]
    fn open(&mut self, kind: u8, pos: usize) -> Option<()> {
        if self.stack.len() >= MAX_DEPTH {
            return None;
        }
        let is_obj = kind == OBJ;
        self.stack.push(Open {
            tok: self.toks.len(),
            is_obj,
            canon: true,
        });
        if is_obj {
            self.key_base.push(self.keys.len());
        }
        self.push(kind, pos, pos, 0);
        Some(())
    }

    /// Closes the innermost container; `end` is one past its closing bracket.
    #[inline(always)]
    fn close(&mut self, end: usize) {
        let Some(open) = self.stack.pop() else {
            return;
        };
        let next = self.toks.len() as u32;
        if let Some(t) = self.toks.get_mut(open.tok) {
            t.next = next;
            t.end = end as u32;
            if !open.canon {
                t.flags |= F_NONCANON;
            }
        }
        if open.is_obj
            && let Some(base) = self.key_base.pop()
        {
            self.keys.truncate(base);
        }
        if !open.canon {
            self.noncanon();
        }
    }

    /// The number at `pos`; returns the position after it.
    fn number(&mut self, pos: usize) -> Option<usize> {
        let b = self.b;
        let start = pos;
        let mut p = pos;
        let digits = |p: &mut usize| {
            let s = *p;
            while b.get(*p).is_some_and(u8::is_ascii_digit) {
                *p += 1;
            }
            *p - s
        };
        if b.get(p) == Some(&b'-') {
            p += 1;
        }
        match b.get(p).copied()? {
            b'0' => p += 1,
            b'1'..=b'9' => {
                digits(&mut p);
            }
            _ => return None,
        }
        let int_digits = p - start;
        let mut simple = true;
        if b.get(p) == Some(&b'.') {
            p += 1;
            if digits(&mut p) == 0 {
                return None;
            }
            simple = false;
        }
        if matches!(b.get(p), Some(b'e' | b'E')) {
            p += 1;
            if matches!(b.get(p), Some(b'+' | b'-')) {
                p += 1;
            }
            if digits(&mut p) == 0 {
                return None;
            }
            simple = false;
        }
        let text = b.get(start..p)?;
        // Integers of up to 18 digits are written back as they are (except `-0`, which
        // serde_json reads as a float); anything else goes through serde_json's own number
        // parser and printer.
        if simple && int_digits <= 18 && text != b"-0" {
            self.push(NUM, start, p, 0);
            return Some(p);
        }
        let t = std::str::from_utf8(text).ok()?;
        let n: serde_json::Number = serde_json::from_str(t).ok()?;
        let canon = n.to_string();
        if canon == t {
            self.push(NUM, start, p, 0);
        } else {
            let s = self.side.len();
            self.side.push_str(&canon);
            let e = self.side.len();
            self.push(NUM, s, e, F_SIDE | F_NONCANON);
            self.noncanon();
        }
        Some(p)
    }

    fn literal(&mut self, pos: usize, word: &[u8], kind: u8) -> Option<usize> {
        if self.b.get(pos..pos + word.len())? != word {
            return None;
        }
        self.push(kind, pos, pos + word.len(), 0);
        Some(pos + word.len())
    }

    /// A key and its colon at `pos` (the opening quote); returns the position of the value.
    #[inline(always)]
    fn key(&mut self, pos: usize) -> Option<usize> {
        let b = self.b;
        if b.get(pos) != Some(&b'"') {
            return None;
        }
        let (e, flags) = string(b, pos + 1)?;
        if flags != 0 {
            // Keys with escapes are left to serde_json.
            return None;
        }
        let key = b.get(pos + 1..e)?;
        let sig = signature(key);
        let base = self.key_base.last().copied().unwrap_or(0);
        for &(sig2, s2, e2) in self.keys.get(base..).unwrap_or_default() {
            if sig2 == sig && b.get(s2 as usize..e2 as usize) == Some(key) {
                // A duplicate key: serde_json keeps the last value at the first position.
                return None;
            }
        }
        self.keys.push((sig, (pos + 1) as u32, e as u32));
        let bit = keybit::of(key);
        if bit != 0
            && let Some(open) = self.stack.last()
            && let Some(t) = self.toks.get_mut(open.tok)
        {
            t.aux |= bit;
        }
        self.push(STR, pos + 1, e, 0);
        let p = self.ws_in(e + 1);
        if b.get(p) != Some(&b':') {
            return None;
        }
        Some(self.ws_in(p + 1))
    }

    fn run(&mut self) -> Option<()> {
        let b = self.b;
        let mut pos = skip_ws(b, 0);
        'value: loop {
            match b.get(pos).copied()? {
                b'"' => {
                    let (e, flags) = string(b, pos + 1)?;
                    if flags & F_NONCANON != 0 {
                        self.noncanon();
                    }
                    self.push(STR, pos + 1, e, flags);
                    pos = e + 1;
                }
                b'{' => {
                    self.open(OBJ, pos)?;
                    pos = self.ws_in(pos + 1);
                    if b.get(pos) == Some(&b'}') {
                        pos += 1;
                        self.close(pos);
                    } else {
                        pos = self.key(pos)?;
                        continue 'value;
                    }
                }
                b'[' => {
                    self.open(ARR, pos)?;
                    pos = self.ws_in(pos + 1);
                    if b.get(pos) == Some(&b']') {
                        pos += 1;
                        self.close(pos);
                    } else {
                        continue 'value;
                    }
                }
                b'-' | b'0'..=b'9' => pos = self.number(pos)?,
                b't' => pos = self.literal(pos, b"true", TRUE)?,
                b'f' => pos = self.literal(pos, b"false", FALSE)?,
                b'n' => pos = self.literal(pos, b"null", NULL)?,
                _ => return None,
            }
            // After a value: separators and closing brackets.
            loop {
                let Some(&Open { is_obj, .. }) = self.stack.last() else {
                    return (skip_ws(b, pos) == b.len()).then_some(());
                };
                pos = self.ws_in(pos);
                match b.get(pos).copied()? {
                    b',' => {
                        pos = self.ws_in(pos + 1);
                        if is_obj {
                            pos = self.key(pos)?;
                        }
                        continue 'value;
                    }
                    b'}' if is_obj => {
                        pos += 1;
                        self.close(pos);
                    }
                    b']' if !is_obj => {
                        pos += 1;
                        self.close(pos);
                    }
                    _ => return None,
                }
            }
        }
    }
}

/// Four hex digits: (value, whether none is an upper-case letter).
fn hex4(h: &[u8]) -> Option<(u32, bool)> {
    let mut n = 0u32;
    let mut lower = true;
    for &c in h {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => {
                lower = false;
                c - b'A' + 10
            }
            _ => return None,
        };
        n = n * 16 + u32::from(d);
    }
    Some((n, lower))
}

impl<'a> Tape<'a> {
    /// Parses one JSON document (no BOM); `None` when it is not valid JSON or uses something
    /// the tape leaves to `serde_json` (see the module docs).
    pub fn parse(bytes: &'a [u8]) -> Option<Tape<'a>> {
        let src = std::str::from_utf8(bytes).ok()?;
        if bytes.len() >= u32::MAX as usize {
            return None;
        }
        let mut p = Parser {
            b: bytes,
            toks: Vec::with_capacity(bytes.len() / 16 + 8),
            side: String::new(),
            stack: Vec::new(),
            keys: Vec::new(),
            key_base: Vec::new(),
        };
        p.run()?;
        Some(Tape {
            src,
            toks: p.toks,
            side: p.side,
        })
    }

    #[inline]
    fn tok(&self, i: usize) -> Tok {
        self.toks.get(i).copied().unwrap_or(Tok {
            start: 0,
            end: 0,
            next: i as u32 + 1,
            kind: NULL,
            flags: 0,
            aux: 0,
        })
    }

    /// The kind of token `i`.
    #[inline]
    pub fn kind(&self, i: usize) -> u8 {
        self.tok(i).kind
    }

    /// The index after the subtree of `i`.
    #[inline]
    pub fn next(&self, i: usize) -> usize {
        self.tok(i).next as usize
    }

    /// The [`keybit`]s of an object's keys.
    #[inline]
    pub fn keys(&self, i: usize) -> u16 {
        self.tok(i).aux
    }

    /// Whether an object or array has no members.
    #[inline]
    pub fn is_empty(&self, i: usize) -> bool {
        self.next(i) == i + 1
    }

    /// The raw text of a string token (escapes as written) or a number.
    #[inline]
    pub fn raw(&self, i: usize) -> &'a str {
        let t = self.tok(i);
        self.src
            .get(t.start as usize..t.end as usize)
            .unwrap_or_default()
    }

    /// The value of a string token.
    pub fn str(&self, i: usize) -> Cow<'a, str> {
        let t = self.tok(i);
        let raw = self.raw(i);
        if t.flags & F_ESC == 0 {
            Cow::Borrowed(raw)
        } else {
            Cow::Owned(unescape(raw))
        }
    }

    /// The string value of token `i`, if it is a string.
    pub fn as_str(&self, i: usize) -> Option<Cow<'a, str>> {
        (self.kind(i) == STR).then(|| self.str(i))
    }

    /// A number as serde_json prints it.
    pub fn num(&self, i: usize) -> &str {
        let t = self.tok(i);
        if t.flags & F_SIDE != 0 {
            self.side
                .get(t.start as usize..t.end as usize)
                .unwrap_or_default()
        } else {
            self.raw(i)
        }
    }

    /// The members of object `i`: (key token, value token).
    pub fn members(&self, i: usize) -> Members<'_, 'a> {
        Members {
            tape: self,
            at: i + 1,
            end: self.next(i),
        }
    }

    /// The items of array `i`.
    pub fn items(&self, i: usize) -> Items<'_, 'a> {
        Items {
            tape: self,
            at: i + 1,
            end: self.next(i),
        }
    }

    /// The value of `key` in object `i` (`None` when `i` is not an object).
    pub fn get(&self, i: usize, key: &str) -> Option<usize> {
        if self.kind(i) != OBJ {
            return None;
        }
        self.members(i)
            .find(|&(k, _)| self.raw(k) == key)
            .map(|(_, v)| v)
    }

    /// `get(i, key)` as a string.
    pub fn get_str(&self, i: usize, key: &str) -> Option<Cow<'a, str>> {
        self.get(i, key).and_then(|v| self.as_str(v))
    }

    /// The value `i` as a `serde_json::Value` (for the rare parts handled on the tree).
    pub fn to_value(&self, i: usize) -> Option<serde_json::Value> {
        let t = self.tok(i);
        match t.kind {
            OBJ | ARR => serde_json::from_str(self.src.get(t.start as usize..t.end as usize)?).ok(),
            STR => Some(serde_json::Value::String(self.str(i).into_owned())),
            NUM => serde_json::from_str(self.num(i)).ok(),
            TRUE => Some(serde_json::Value::Bool(true)),
            FALSE => Some(serde_json::Value::Bool(false)),
            _ => Some(serde_json::Value::Null),
        }
    }

    /// Writes a string token as serde_json would; whether what it wrote holds an escape.
    pub fn write_str(&self, i: usize, out: &mut Vec<u8>) -> bool {
        let t = self.tok(i);
        if t.flags & F_NONCANON == 0 {
            out.push(b'"');
            out.extend_from_slice(self.raw(i).as_bytes());
            out.push(b'"');
            t.flags & F_ESC != 0
        } else {
            write_escaped(&self.str(i), out)
        }
    }

    /// Writes value `i` (and its subtree) as serde_json would.
    pub fn write(&self, i: usize, out: &mut Vec<u8>) {
        let t = self.tok(i);
        match t.kind {
            OBJ | ARR if t.flags & F_NONCANON == 0 => {
                out.extend_from_slice(
                    self.src
                        .get(t.start as usize..t.end as usize)
                        .unwrap_or_default()
                        .as_bytes(),
                );
            }
            OBJ => {
                out.push(b'{');
                for (n, (k, v)) in self.members(i).enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    self.write_str(k, out);
                    out.push(b':');
                    self.write(v, out);
                }
                out.push(b'}');
            }
            ARR => {
                out.push(b'[');
                for (n, v) in self.items(i).enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    self.write(v, out);
                }
                out.push(b']');
            }
            STR => {
                self.write_str(i, out);
            }
            NUM => out.extend_from_slice(self.num(i).as_bytes()),
            TRUE => out.extend_from_slice(b"true"),
            FALSE => out.extend_from_slice(b"false"),
            _ => out.extend_from_slice(b"null"),
        }
    }
}

/// Iterator over an object's members.
#[derive(Debug)]
pub(crate) struct Members<'t, 'a> {
    tape: &'t Tape<'a>,
    at: usize,
    end: usize,
}

impl Iterator for Members<'_, '_> {
    type Item = (usize, usize);

    #[inline]
    fn next(&mut self) -> Option<(usize, usize)> {
        if self.at >= self.end {
            return None;
        }
        let k = self.at;
        let v = k + 1;
        self.at = self.tape.next(v);
        Some((k, v))
    }
}

/// Iterator over an array's items.
#[derive(Debug)]
pub(crate) struct Items<'t, 'a> {
    tape: &'t Tape<'a>,
    at: usize,
    end: usize,
}

impl Iterator for Items<'_, '_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.at >= self.end {
            return None;
        }
        let v = self.at;
        self.at = self.tape.next(v);
        Some(v)
    }
}

/// Decodes the escapes of a raw string (validated by the parser, or written by
/// [`write_escaped`]).
pub(crate) fn unescape(raw: &str) -> String {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    let mut lit = 0;
    while let Some(&c) = b.get(i) {
        if c != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(raw.get(lit..i).unwrap_or_default());
        let (ch, len) = match b.get(i + 1).copied() {
            Some(b'"') => (Some('"'), 2),
            Some(b'\\') => (Some('\\'), 2),
            Some(b'/') => (Some('/'), 2),
            Some(b'b') => (Some('\u{8}'), 2),
            Some(b'f') => (Some('\u{c}'), 2),
            Some(b'n') => (Some('\n'), 2),
            Some(b'r') => (Some('\r'), 2),
            Some(b't') => (Some('\t'), 2),
            Some(b'u') => {
                let n = b.get(i + 2..i + 6).and_then(hex4).map_or(0, |h| h.0);
                if (0xD800..=0xDBFF).contains(&n) {
                    let n2 = b.get(i + 8..i + 12).and_then(hex4).map_or(0, |h| h.0);
                    let c = 0x1_0000 + ((n - 0xD800) << 10) + (n2.wrapping_sub(0xDC00) & 0x3FF);
                    (char::from_u32(c), 12)
                } else {
                    (char::from_u32(n), 6)
                }
            }
            _ => (None, 1),
        };
        if let Some(ch) = ch {
            out.push(ch);
        }
        i += len;
        lit = i;
    }
    out.push_str(raw.get(lit..).unwrap_or_default());
    out
}

/// Writes `s` as a JSON string, escaped as serde_json escapes; whether it escaped anything.
pub(crate) fn write_escaped(s: &str, out: &mut Vec<u8>) -> bool {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b = s.as_bytes();
    out.reserve(b.len() + 2);
    out.push(b'"');
    let mut lit = 0;
    while let Some(j) = scan_str(b, lit) {
        let Some(&c) = b.get(j) else {
            break;
        };
        out.extend_from_slice(b.get(lit..j).unwrap_or_default());
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0C => out.extend_from_slice(b"\\f"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX.get(usize::from(c >> 4)).copied().unwrap_or(b'0'));
                out.push(HEX.get(usize::from(c & 0xF)).copied().unwrap_or(b'0'));
            }
        }
        lit = j + 1;
    }
    let escaped = lit > 0;
    out.extend_from_slice(b.get(lit..).unwrap_or_default());
    out.push(b'"');
    escaped
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What serde_json makes of `text`: its compact form, or `None` when it rejects it.
    fn serde_form(text: &str) -> Option<Vec<u8>> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        serde_json::to_vec(&v).ok()
    }

    fn tape_form(text: &str) -> Option<Vec<u8>> {
        let t = Tape::parse(text.as_bytes())?;
        let mut out = Vec::new();
        t.write(0, &mut out);
        Some(out)
    }

    fn agrees(text: &str) {
        let tape = tape_form(text);
        let serde = serde_form(text);
        match (&tape, &serde) {
            (Some(t), Some(s)) => assert_eq!(
                String::from_utf8_lossy(t),
                String::from_utf8_lossy(s),
                "input {text:?}"
            ),
            // The tape may leave a document to serde_json, never accept one serde_json rejects.
            (None, _) => {}
            (Some(_), None) => panic!("tape accepted what serde_json rejects: {text:?}"),
        }
    }

    #[test]
    fn canonical_output_matches_serde_json() {
        for text in [
            r#"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#,
            "{ \"a\" : [ 1 , 2 ] ,\n  \"b\": {} , \"c\": [] }",
            r#"["\u00e9\/\n\u001f\u001F\"\\", "\ud83d\ude00", "x\ty"]"#,
            r#"[1.0, 1.50, -0, 0, -0.0, 1e5, 1E-7, 12345678901234567890, 123456789012345678, -5]"#,
            r#"[0.1, 174.5, -122.146791, 1e400]"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\udc00x"}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"\u0061":1}"#,
            r#"[01]"#,
            r#"[1,]"#,
            r#"{"a":1}x"#,
            "\"a\u{1}\"",
            r#"[1.]"#,
            r#"[-]"#,
            r#"[tru]"#,
            "  [ ]  ",
            "",
        ] {
            agrees(text);
        }
        assert!(tape_form(r#"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#).is_some());
        assert!(tape_form(r#"{"a":1,"a":2}"#).is_none());
    }

    #[test]
    fn deep_nesting_is_left_to_serde_json() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(tape_form(&deep).is_none());
        let ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        agrees(&ok);
    }

    #[test]
    fn lookups() {
        let t = Tape::parse(
            br#"{"resourceType":"Patient","name":[{"family":"X","given":["A","B"]}],"e":"a\nb"}"#,
        )
        .unwrap();
        assert_eq!(t.get_str(0, "resourceType").as_deref(), Some("Patient"));
        let name = t.get(0, "name").unwrap();
        let first = t.items(name).next().unwrap();
        assert_eq!(t.keys(first), keybit::FAMILY | keybit::GIVEN);
        assert_eq!(t.get_str(0, "e").as_deref(), Some("a\nb"));
        assert_eq!(
            t.to_value(name).unwrap(),
            serde_json::json!([{"family":"X","given":["A","B"]}])
        );
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            "[a-z\"\\\\/\u{0}-\u{1f}é😀 ]{0,12}".prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[a-zA-Z]{1,6}", inner, 0..5)
                    .prop_map(|m| { serde_json::Value::Object(m.into_iter().collect()) }),
            ]
        })
    }

    /// Re-spells a document: whitespace, `\u` escapes, `\/`, upper-case hex, other spellings
    /// of numbers.
    pub(crate) fn respell(v: &serde_json::Value, seed: u64, out: &mut String) {
        let ws = |out: &mut String, n: u64| {
            for _ in 0..(n % 3) {
                out.push_str([" ", "\n", "\t", "\r\n  "][(n % 4) as usize]);
            }
        };
        match v {
            serde_json::Value::Object(o) => {
                out.push('{');
                for (i, (k, x)) in o.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    ws(out, seed.wrapping_add(i as u64));
                    out.push_str(&serde_json::to_string(k).unwrap());
                    ws(out, seed >> 3);
                    out.push(':');
                    respell(x, seed.rotate_left(7).wrapping_add(i as u64), out);
                }
                ws(out, seed >> 5);
                out.push('}');
            }
            serde_json::Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    respell(x, seed.rotate_left(11).wrapping_add(i as u64), out);
                }
                ws(out, seed >> 2);
                out.push(']');
            }
            serde_json::Value::String(s) => {
                out.push('"');
                for (i, c) in s.chars().enumerate() {
                    match (c, (seed >> (i % 16)) % 4) {
                        ('/', 0) => out.push_str("\\/"),
                        (c, 1) if (c as u32) < 0x10000 => {
                            out.push_str(&format!("\\u{:04X}", c as u32));
                        }
                        (c, 2) if (c as u32) < 0x10000 => {
                            out.push_str(&format!("\\u{:04x}", c as u32));
                        }
                        (c, 2) => {
                            let mut buf = [0u16; 2];
                            for u in c.encode_utf16(&mut buf) {
                                out.push_str(&format!("\\u{:04x}", u));
                            }
                        }
                        _ => {
                            let e = serde_json::to_string(&c.to_string()).unwrap();
                            out.push_str(&e[1..e.len() - 1]);
                        }
                    }
                }
                out.push('"');
            }
            serde_json::Value::Number(n) => {
                let t = n.to_string();
                match seed % 4 {
                    0 if n.is_f64() => out.push_str(&format!("{}", n.as_f64().unwrap())),
                    1 if n.is_f64() => out.push_str(&format!("{:e}", n.as_f64().unwrap())),
                    2 if n.is_i64() || n.is_u64() => out.push_str(&format!("{t}.000")),
                    _ => out.push_str(&t),
                }
            }
            other => out.push_str(&other.to_string()),
        }
        ws(out, seed >> 9);
    }

    proptest! {
        #[test]
        fn respelled_documents_round_trip_like_serde_json(v in json_value(), seed in any::<u64>()) {
            let compact = serde_json::to_string(&v).unwrap();
            agrees(&compact);
            prop_assert!(tape_form(&compact).is_some(), "{compact}");
            let mut text = String::new();
            respell(&v, seed, &mut text);
            agrees(&text);
        }

        #[test]
        fn arbitrary_text_never_accepted_when_serde_json_rejects(s in "[\\[\\]{}\",:0-9a-z.eE+\\- \\\\u]{0,24}") {
            agrees(&s);
        }

        #[test]
        fn escaping_matches_serde_json(s in "\\PC{0,16}|[\u{0}-\u{7f}]{0,16}") {
            let mut out = Vec::new();
            write_escaped(&s, &mut out);
            prop_assert_eq!(out, serde_json::to_vec(&s).unwrap());
        }
    }
}
