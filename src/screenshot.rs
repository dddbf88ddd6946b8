//! Deterministic, offline PNG screenshots of a rendered ratatui [`Buffer`].
//!
//! The README's images must be reproducible byte for byte on any machine, so everything the
//! output depends on is pinned here: the fonts are embedded (never looked up on the system), the
//! palette is fixed, and there is no time or randomness involved.
//!
//! Box-drawing, block-element and Braille characters are painted as rectangles instead of font
//! glyphs: font outlines for them rarely span the whole cell at an arbitrary pixel size, which
//! leaves hairline gaps between the pieces of a border or a bar.

use std::io::Cursor;
use std::sync::OnceLock;

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use image::{ImageError, ImageFormat, Rgb, RgbImage};
use ratatui::buffer::{Buffer, Cell, CellDiffOption, CellWidth};
use ratatui::style::{Color, Modifier};
use unicode_width::UnicodeWidthChar;

/// Width of one terminal cell in pixels.
pub const CELL_WIDTH: u32 = 9;
/// Height of one terminal cell in pixels.
pub const CELL_HEIGHT: u32 = 18;

/// `PxScale` height: with DejaVu Sans Mono, ascent + descent at this scale is exactly one cell.
const FONT_PX: f32 = 18.0;

/// Dark theme defaults used for `Color::Reset`.
const DEFAULT_FG: Rgb<u8> = Rgb([0xd0, 0xd0, 0xd0]);
const DEFAULT_BG: Rgb<u8> = Rgb([0x1e, 0x1e, 0x2e]);

/// The 16 ANSI colours, from the Tango palette (GNOME Terminal's long-standing default). It keeps
/// normal and bright variants clearly distinct, which matters because the dashboard uses
/// red/yellow/green as a severity scale, and its saturated hues stay legible on the dark
/// background above. Order follows the ANSI indices 0-15.
const ANSI: [Rgb<u8>; 16] = [
    Rgb([0x2e, 0x34, 0x36]), // Black
    Rgb([0xcc, 0x00, 0x00]), // Red
    Rgb([0x4e, 0x9a, 0x06]), // Green
    Rgb([0xc4, 0xa0, 0x00]), // Yellow
    Rgb([0x34, 0x65, 0xa4]), // Blue
    Rgb([0x75, 0x50, 0x7b]), // Magenta
    Rgb([0x06, 0x98, 0x9a]), // Cyan
    Rgb([0xd3, 0xd7, 0xcf]), // Gray (ANSI "white")
    Rgb([0x55, 0x57, 0x53]), // DarkGray (ANSI "bright black")
    Rgb([0xef, 0x29, 0x29]), // LightRed
    Rgb([0x8a, 0xe2, 0x34]), // LightGreen
    Rgb([0xfc, 0xe9, 0x4f]), // LightYellow
    Rgb([0x72, 0x9f, 0xcf]), // LightBlue
    Rgb([0xad, 0x7f, 0xa8]), // LightMagenta
    Rgb([0x34, 0xe2, 0xe2]), // LightCyan
    Rgb([0xee, 0xee, 0xec]), // White
];

static REGULAR_TTF: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/fonts/DejaVuSansMono.ttf"));
static BOLD_TTF: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/fonts/DejaVuSansMono-Bold.ttf"
));

struct Fonts {
    regular: FontRef<'static>,
    bold: FontRef<'static>,
}

/// Parses the embedded fonts once.
///
/// `None` only if the committed regular font is corrupt; screenshots then still show colours,
/// boxes and blocks but no text, rather than panicking inside a rendering helper.
fn fonts() -> Option<&'static Fonts> {
    static FONTS: OnceLock<Option<Fonts>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let regular = FontRef::try_from_slice(REGULAR_TTF).ok()?;
            let bold = FontRef::try_from_slice(BOLD_TTF).unwrap_or_else(|_| regular.clone());
            Some(Fonts { regular, bold })
        })
        .as_ref()
}

/// Rasterise a ratatui Buffer to an RGB image of `width * 9` x `height * 18` pixels.
pub fn render_png(buffer: &Buffer) -> RgbImage {
    let area = buffer.area;
    let mut img = RgbImage::from_pixel(
        u32::from(area.width) * CELL_WIDTH,
        u32::from(area.height) * CELL_HEIGHT,
        DEFAULT_BG,
    );
    let placed = layout(buffer);
    // Backgrounds first, so that nothing drawn later (e.g. a glyph's antialiased edge) can be
    // overwritten by a neighbour's background fill.
    for p in &placed {
        fill(&mut img, p.rect, p.rect, p.paint.bg);
    }
    for p in &placed {
        draw_cell(&mut img, p);
    }
    img
}

/// Encode [`render_png`]'s image as PNG bytes; the same buffer always gives the same bytes.
pub fn png_bytes(buffer: &Buffer) -> Result<Vec<u8>, ImageError> {
    let img = render_png(buffer);
    let mut bytes = Vec::new();
    img.write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)?;
    Ok(bytes)
}

/// How a committed PNG differs from what the code draws now, in pixels, so that a re-encoding of the same image (a
/// newer png crate, another compression level, an optimiser run over `screenshots/`) is not a difference.
/// `None` when the pixels are equal; otherwise one line naming the size change or the first differing terminal cell.
pub fn pixel_difference(committed_png: &[u8], drawn: &RgbImage) -> Option<String> {
    let committed = match image::load_from_memory_with_format(committed_png, ImageFormat::Png) {
        Ok(image) => image.to_rgb8(),
        Err(e) => return Some(format!("not a readable PNG ({e})")),
    };
    if committed.dimensions() != drawn.dimensions() {
        let (cw, ch) = committed.dimensions();
        let (dw, dh) = drawn.dimensions();
        return Some(format!("{cw}x{ch} pixels committed, {dw}x{dh} drawn"));
    }
    let mut differing = committed
        .enumerate_pixels()
        .filter(|(x, y, pixel)| drawn.get_pixel(*x, *y) != *pixel)
        .map(|(x, y, _)| (x, y));
    let (x, y) = differing.next()?;
    let count = 1 + differing.count();
    Some(format!(
        "{count} pixels differ, the first in terminal cell column {} row {}",
        x / CELL_WIDTH,
        y / CELL_HEIGHT
    ))
}

/// A pixel rectangle; `x1`/`y1` are exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PxRect {
    x0: i32,
    y0: i32,
    x1: i32,
    y1: i32,
}

impl PxRect {
    fn width(self) -> i32 {
        self.x1 - self.x0
    }

    fn height(self) -> i32 {
        self.y1 - self.y0
    }

    fn contains(self, x: i32, y: i32) -> bool {
        x >= self.x0 && x < self.x1 && y >= self.y0 && y < self.y1
    }
}

#[derive(Debug, Clone, Copy)]
struct Paint {
    fg: Rgb<u8>,
    bg: Rgb<u8>,
    bold: bool,
    underline: bool,
    crossed_out: bool,
}

struct Placed<'a> {
    cell: &'a Cell,
    /// The cell's pixels, widened over the cells a wide symbol hides.
    rect: PxRect,
    paint: Paint,
}

/// Assigns each visible cell its pixel rectangle.
///
/// Cells hidden behind a wide symbol are dropped, mirroring ratatui's own diff: a terminal never
/// receives them, so the wide symbol's colours cover both columns.
fn layout(buffer: &Buffer) -> Vec<Placed<'_>> {
    let width = usize::from(buffer.area.width);
    let mut placed = Vec::with_capacity(buffer.content.len());
    if width == 0 {
        return placed;
    }
    for (row, cells) in buffer.content.chunks(width).enumerate() {
        let mut col = 0;
        while col < cells.len() {
            let cell = &cells[col];
            let span = usize::from(cell_span(cell)).min(cells.len() - col);
            let x0 = px(col, CELL_WIDTH);
            let y0 = px(row, CELL_HEIGHT);
            placed.push(Placed {
                cell,
                rect: PxRect {
                    x0,
                    y0,
                    x1: x0 + px(span, CELL_WIDTH),
                    y1: y0 + px(1, CELL_HEIGHT),
                },
                paint: paint(cell),
            });
            col += span;
        }
    }
    placed
}

fn px(cells: usize, size: u32) -> i32 {
    // A Buffer has at most u16::MAX columns/rows, so this cannot overflow i32.
    i32::try_from(cells).unwrap_or(i32::MAX / 32) * size as i32
}

/// Number of columns the cell occupies (at least one).
fn cell_span(cell: &Cell) -> u16 {
    if let CellDiffOption::ForcedWidth(w) = cell.diff_option {
        return w.get();
    }
    let symbol = cell.symbol();
    // Single bytes are always one column; checking here also keeps stray control characters
    // away from `cell_width`, which debug-asserts on them.
    if symbol.len() == 1 {
        1
    } else {
        symbol.cell_width().max(1)
    }
}

fn paint(cell: &Cell) -> Paint {
    let mut fg = rgb(cell.fg).unwrap_or(DEFAULT_FG);
    let mut bg = rgb(cell.bg).unwrap_or(DEFAULT_BG);
    let m = cell.modifier;
    if m.contains(Modifier::REVERSED) {
        std::mem::swap(&mut fg, &mut bg);
    }
    // Dim after reversing: it applies to whatever colour the text ends up drawn in.
    if m.contains(Modifier::DIM) {
        fg = mix(bg, fg, 0.5);
    }
    if m.contains(Modifier::HIDDEN) {
        fg = bg;
    }
    Paint {
        fg,
        bg,
        bold: m.contains(Modifier::BOLD),
        underline: m.contains(Modifier::UNDERLINED),
        crossed_out: m.contains(Modifier::CROSSED_OUT),
    }
}

/// RGB for a colour; `None` for `Reset`, whose meaning depends on fg vs bg.
fn rgb(color: Color) -> Option<Rgb<u8>> {
    Some(match color {
        Color::Reset => return None,
        Color::Black => ANSI[0],
        Color::Red => ANSI[1],
        Color::Green => ANSI[2],
        Color::Yellow => ANSI[3],
        Color::Blue => ANSI[4],
        Color::Magenta => ANSI[5],
        Color::Cyan => ANSI[6],
        Color::Gray => ANSI[7],
        Color::DarkGray => ANSI[8],
        Color::LightRed => ANSI[9],
        Color::LightGreen => ANSI[10],
        Color::LightYellow => ANSI[11],
        Color::LightBlue => ANSI[12],
        Color::LightMagenta => ANSI[13],
        Color::LightCyan => ANSI[14],
        Color::White => ANSI[15],
        Color::Rgb(r, g, b) => Rgb([r, g, b]),
        Color::Indexed(n) => xterm256(n),
    })
}

/// The standard xterm 256-colour palette; the first 16 entries follow our ANSI palette, as they
/// would in a themed terminal.
fn xterm256(n: u8) -> Rgb<u8> {
    const LEVELS: [u8; 6] = [0x00, 0x5f, 0x87, 0xaf, 0xd7, 0xff];
    match n {
        0..=15 => ANSI[usize::from(n)],
        16..=231 => {
            let i = n - 16;
            Rgb([
                LEVELS[usize::from(i / 36)],
                LEVELS[usize::from(i / 6 % 6)],
                LEVELS[usize::from(i % 6)],
            ])
        }
        232..=255 => {
            let v = 8 + 10 * (n - 232);
            Rgb([v, v, v])
        }
    }
}

/// `a` moved by `t` (0..=1) toward `b`.
fn mix(a: Rgb<u8>, b: Rgb<u8>, t: f32) -> Rgb<u8> {
    let t = t.clamp(0.0, 1.0);
    let ch = |i: usize| {
        let v = f32::from(a.0[i]) + (f32::from(b.0[i]) - f32::from(a.0[i])) * t;
        v.round().clamp(0.0, 255.0) as u8
    };
    Rgb([ch(0), ch(1), ch(2)])
}

/// Fills `r` intersected with `clip` (and the image) with `color`.
fn fill(img: &mut RgbImage, clip: PxRect, r: PxRect, color: Rgb<u8>) {
    let (iw, ih) = (img.width() as i32, img.height() as i32);
    let x0 = r.x0.max(clip.x0).max(0);
    let y0 = r.y0.max(clip.y0).max(0);
    let x1 = r.x1.min(clip.x1).min(iw);
    let y1 = r.y1.min(clip.y1).min(ih);
    for y in y0..y1 {
        for x in x0..x1 {
            img.put_pixel(x as u32, y as u32, color);
        }
    }
}

/// Blends `color` over the existing pixel with coverage `alpha`, if inside `clip`.
fn blend(img: &mut RgbImage, clip: PxRect, x: i32, y: i32, color: Rgb<u8>, alpha: f32) {
    if alpha <= 0.0 || !clip.contains(x, y) || x < 0 || y < 0 {
        return;
    }
    let (x, y) = (x as u32, y as u32);
    if x >= img.width() || y >= img.height() {
        return;
    }
    let below = *img.get_pixel(x, y);
    img.put_pixel(x, y, mix(below, color, alpha));
}

fn draw_cell(img: &mut RgbImage, p: &Placed<'_>) {
    // Skipped cells belong to something drawn outside ratatui (e.g. an inline image); only
    // their background is known.
    if p.cell.diff_option == CellDiffOption::Skip {
        return;
    }
    let symbol = p.cell.symbol();
    let mut chars = symbol.chars();
    let first = chars.next();
    let handled = match (first, chars.next()) {
        (Some(c), None) => draw_special(img, p.rect, c, p.paint),
        _ => false,
    };
    if !handled {
        draw_text(img, p.rect, symbol, p.paint);
    }
    let r = p.rect;
    if p.paint.underline {
        let y = r.y1 - 2;
        fill(img, r, PxRect { y0: y, y1: y + 1, ..r }, p.paint.fg);
    }
    if p.paint.crossed_out {
        // Through the middle of lowercase letters (baseline 14, x-height ~10 px at this size).
        let y = r.y0 + 9;
        fill(img, r, PxRect { y0: y, y1: y + 1, ..r }, p.paint.fg);
    }
}

/// Draws characters that must tile seamlessly; returns false for everything else.
fn draw_special(img: &mut RgbImage, r: PxRect, c: char, paint: Paint) -> bool {
    match c {
        '\u{2500}'..='\u{257F}' => draw_box(img, r, c, paint.fg),
        '\u{2580}'..='\u{259F}' => {
            draw_block(img, r, c, paint.fg);
            true
        }
        '\u{2800}'..='\u{28FF}' => {
            draw_braille(img, r, c, paint.fg);
            true
        }
        _ => false,
    }
}

// ----------------------------------------------------------------------------------------------
// Text

fn draw_text(img: &mut RgbImage, r: PxRect, symbol: &str, paint: Paint) {
    let Some(fonts) = fonts() else {
        return;
    };
    let cleaned;
    let symbol = if symbol.contains('\x1b') {
        cleaned = strip_escapes(symbol);
        cleaned.as_str()
    } else {
        symbol
    };
    let face = if paint.bold { &fonts.bold } else { &fonts.regular };
    let scale = PxScale::from(FONT_PX);
    // Integer baseline and pen positions keep stems on whole pixels, so text is crisp.
    let baseline = r.y0 as f32 + face.as_scaled(scale).ascent().round();
    let mut pen = r.x0;
    // Where the last spacing glyph was placed and its advance, for attaching combining marks.
    let mut base: Option<(f32, f32)> = None;
    for c in symbol.chars() {
        let Some(columns) = c.width() else {
            continue; // control character: nothing a terminal would show
        };
        // A glyph the bold face lacks is better shown regular than as a "missing" box.
        let font = if face.glyph_id(c).0 == 0 && fonts.regular.glyph_id(c).0 != 0 {
            &fonts.regular
        } else {
            face
        };
        let scaled = font.as_scaled(scale);
        let id = font.glyph_id(c);
        let advance = scaled.h_advance(id);
        let x = if columns == 0 {
            match base {
                // Zero-advance marks are drawn to the left of their origin, onto the base.
                Some((bx, badv)) if advance == 0.0 => bx + badv,
                Some((bx, _)) => bx,
                None => pen as f32,
            }
        } else {
            let slot = px(columns, CELL_WIDTH) as f32;
            let x = (pen as f32 + (slot - advance) / 2.0).round();
            base = Some((x, advance));
            pen += slot as i32;
            x
        };
        if c == ' ' {
            continue;
        }
        let glyph = id.with_scale_and_position(scale, point(x, baseline));
        let Some(outlined) = font.outline_glyph(glyph) else {
            continue;
        };
        let bounds = outlined.px_bounds();
        let (gx0, gy0) = (bounds.min.x as i32, bounds.min.y as i32);
        outlined.draw(|gx, gy, coverage| {
            blend(img, r, gx0 + gx as i32, gy0 + gy as i32, paint.fg, coverage);
        });
    }
}

/// Removes CSI and OSC escape sequences (e.g. hyperlinks embedded in a `ForcedWidth` cell), which
/// a terminal interprets rather than displays.
fn strip_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('[') => {
                // CSI: parameters, then one final byte in @..~.
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            Some(']') => {
                // OSC: terminated by BEL or ST (ESC \).
                while let Some(c) = chars.next() {
                    if c == '\x07' {
                        break;
                    }
                    if c == '\x1b' {
                        if chars.peek() == Some(&'\\') {
                            chars.next();
                        }
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    out
}

// ----------------------------------------------------------------------------------------------
// Box drawing (U+2500-U+257F)

const N: u8 = 0; // no line
const L: u8 = 1; // light
const H: u8 = 2; // heavy
const D: u8 = 3; // double

/// Arms of each box-drawing character as [up, right, down, left]. Dashed lines, rounded corners
/// and diagonals are drawn specially but keep their straight-line arms here for reference.
#[rustfmt::skip]
const BOX: [[u8; 4]; 0x80] = [
    // 2500 ─ ━ │ ┃ ┄ ┅ ┆ ┇ ┈ ┉ ┊ ┋ ┌ ┍ ┎ ┏
    [N,L,N,L], [N,H,N,H], [L,N,L,N], [H,N,H,N], [N,L,N,L], [N,H,N,H], [L,N,L,N], [H,N,H,N],
    [N,L,N,L], [N,H,N,H], [L,N,L,N], [H,N,H,N], [N,L,L,N], [N,H,L,N], [N,L,H,N], [N,H,H,N],
    // 2510 ┐ ┑ ┒ ┓ └ ┕ ┖ ┗ ┘ ┙ ┚ ┛ ├ ┝ ┞ ┟
    [N,N,L,L], [N,N,L,H], [N,N,H,L], [N,N,H,H], [L,L,N,N], [L,H,N,N], [H,L,N,N], [H,H,N,N],
    [L,N,N,L], [L,N,N,H], [H,N,N,L], [H,N,N,H], [L,L,L,N], [L,H,L,N], [H,L,L,N], [L,L,H,N],
    // 2520 ┠ ┡ ┢ ┣ ┤ ┥ ┦ ┧ ┨ ┩ ┪ ┫ ┬ ┭ ┮ ┯
    [H,L,H,N], [H,H,L,N], [L,H,H,N], [H,H,H,N], [L,N,L,L], [L,N,L,H], [H,N,L,L], [L,N,H,L],
    [H,N,H,L], [H,N,L,H], [L,N,H,H], [H,N,H,H], [N,L,L,L], [N,L,L,H], [N,H,L,L], [N,H,L,H],
    // 2530 ┰ ┱ ┲ ┳ ┴ ┵ ┶ ┷ ┸ ┹ ┺ ┻ ┼ ┽ ┾ ┿
    [N,L,H,L], [N,L,H,H], [N,H,H,L], [N,H,H,H], [L,L,N,L], [L,L,N,H], [L,H,N,L], [L,H,N,H],
    [H,L,N,L], [H,L,N,H], [H,H,N,L], [H,H,N,H], [L,L,L,L], [L,L,L,H], [L,H,L,L], [L,H,L,H],
    // 2540 ╀ ╁ ╂ ╃ ╄ ╅ ╆ ╇ ╈ ╉ ╊ ╋ ╌ ╍ ╎ ╏
    [H,L,L,L], [L,L,H,L], [H,L,H,L], [H,L,L,H], [H,H,L,L], [L,L,H,H], [L,H,H,L], [H,H,L,H],
    [L,H,H,H], [H,L,H,H], [H,H,H,L], [H,H,H,H], [N,L,N,L], [N,H,N,H], [L,N,L,N], [H,N,H,N],
    // 2550 ═ ║ ╒ ╓ ╔ ╕ ╖ ╗ ╘ ╙ ╚ ╛ ╜ ╝ ╞ ╟
    [N,D,N,D], [D,N,D,N], [N,D,L,N], [N,L,D,N], [N,D,D,N], [N,N,L,D], [N,N,D,L], [N,N,D,D],
    [L,D,N,N], [D,L,N,N], [D,D,N,N], [L,N,N,D], [D,N,N,L], [D,N,N,D], [L,D,L,N], [D,L,D,N],
    // 2560 ╠ ╡ ╢ ╣ ╤ ╥ ╦ ╧ ╨ ╩ ╪ ╫ ╬ ╭ ╮ ╯
    [D,D,D,N], [L,N,L,D], [D,N,D,L], [D,N,D,D], [N,D,L,D], [N,L,D,L], [N,D,D,D], [L,D,N,D],
    [D,L,N,L], [D,D,N,D], [L,D,L,D], [D,L,D,L], [D,D,D,D], [N,L,L,N], [N,N,L,L], [L,N,N,L],
    // 2570 ╰ ╱ ╲ ╳ ╴ ╵ ╶ ╷ ╸ ╹ ╺ ╻ ╼ ╽ ╾ ╿
    [L,L,N,N], [N,N,N,N], [N,N,N,N], [N,N,N,N], [N,N,N,L], [L,N,N,N], [N,L,N,N], [N,N,L,N],
    [N,N,N,H], [H,N,N,N], [N,H,N,N], [N,N,H,N], [N,H,N,L], [L,N,H,N], [N,L,N,H], [H,N,L,N],
];

/// Distance from the centre line to the outer edge of a line of this weight.
fn reach(weight: u8) -> i32 {
    match weight {
        H => 1,
        D => 2,
        _ => 0,
    }
}

/// Geometry shared by all box-drawing parts of one cell (box characters are one column wide,
/// so the left-most cell of the rectangle is used).
#[derive(Clone, Copy)]
struct BoxCell {
    r: PxRect,
    cx: i32,
    cy: i32,
}

impl BoxCell {
    fn new(r: PxRect) -> Self {
        let r = PxRect {
            x1: r.x0 + CELL_WIDTH as i32,
            ..r
        };
        // Centre pixel rounded down: both cell dimensions are fixed, so neighbours always agree.
        BoxCell {
            r,
            cx: r.x0 + (r.width() - 1) / 2,
            cy: r.y0 + (r.height() - 1) / 2,
        }
    }

    /// Fills the inclusive span `a0..=a1` along `axis`, `b0..=b1` across it.
    fn span(self, img: &mut RgbImage, horizontal: bool, a: (i32, i32), b: (i32, i32), c: Rgb<u8>) {
        let (a0, a1) = (a.0.min(a.1), a.0.max(a.1));
        let (b0, b1) = (b.0.min(b.1), b.0.max(b.1));
        let rect = if horizontal {
            PxRect {
                x0: a0,
                x1: a1 + 1,
                y0: b0,
                y1: b1 + 1,
            }
        } else {
            PxRect {
                x0: b0,
                x1: b1 + 1,
                y0: a0,
                y1: a1 + 1,
            }
        };
        fill(img, self.r, rect, c);
    }
}

fn draw_box(img: &mut RgbImage, r: PxRect, c: char, fg: Rgb<u8>) -> bool {
    let cell = BoxCell::new(r);
    let index = (c as u32 - 0x2500) as usize;
    match c {
        '┄' | '┅' | '┆' | '┇' => draw_dashed(img, cell, BOX[index], 3, fg),
        '┈' | '┉' | '┊' | '┋' => draw_dashed(img, cell, BOX[index], 4, fg),
        '╌' | '╍' | '╎' | '╏' => draw_dashed(img, cell, BOX[index], 2, fg),
        '╭' => draw_arc(img, cell, 1, 1, fg),
        '╮' => draw_arc(img, cell, -1, 1, fg),
        '╯' => draw_arc(img, cell, -1, -1, fg),
        '╰' => draw_arc(img, cell, 1, -1, fg),
        '╱' => draw_diagonal(img, cell, true, fg),
        '╲' => draw_diagonal(img, cell, false, fg),
        '╳' => {
            draw_diagonal(img, cell, true, fg);
            draw_diagonal(img, cell, false, fg);
        }
        _ => draw_arms(img, cell, BOX[index], fg),
    }
    true
}

fn draw_arms(img: &mut RgbImage, cell: BoxCell, [up, right, down, left]: [u8; 4], fg: Rgb<u8>) {
    let BoxCell { r, cx, cy } = cell;
    // (weight, horizontal?, edge coordinate, direction from centre to edge, centre along,
    //  centre across, perpendicular arm on the lower-coordinate side, on the higher side)
    let arms = [
        (left, true, r.x0, -1, cx, cy, up, down),
        (right, true, r.x1 - 1, 1, cx, cy, up, down),
        (up, false, r.y0, -1, cy, cx, left, right),
        (down, false, r.y1 - 1, 1, cy, cx, left, right),
    ];
    for (weight, horizontal, edge, dir, ca, cb, low, high) in arms {
        match weight {
            N => {}
            D => {
                // Each of the two tracks stops at the perpendicular line on its own side
                // (a tee or cross leaves a gap), else runs to the far one (outer corner).
                for (offset, same, other) in [(-2, low, high), (2, high, low)] {
                    let end = if same != N {
                        ca + dir * reach(same)
                    } else if other != N {
                        ca - dir * reach(other)
                    } else {
                        ca
                    };
                    let b = cb + offset;
                    cell.span(img, horizontal, (edge, end), (b, b), fg);
                }
            }
            _ => {
                // Run past the centre far enough to cover the whole perpendicular line, so that
                // corners and tees have no notch.
                let end = ca - dir * reach(low).max(reach(high));
                let t = reach(weight);
                cell.span(img, horizontal, (edge, end), (cb - t, cb + t), fg);
            }
        }
    }
}

fn draw_dashed(img: &mut RgbImage, cell: BoxCell, arms: [u8; 4], dashes: i32, fg: Rgb<u8>) {
    let BoxCell { r, cx, cy } = cell;
    let horizontal = arms[1] != N;
    let t = reach(arms[1].max(arms[0]));
    let (start, len, cb) = if horizontal {
        (r.x0, r.width(), cy)
    } else {
        (r.y0, r.height(), cx)
    };
    for i in 0..dashes {
        let s = start + i * len / dashes;
        let e = start + (i + 1) * len / dashes;
        // Split each gap across both ends so dashes stay evenly spaced across cell borders.
        let gap = ((e - s) / 3).max(1);
        let (a0, a1) = (s + gap / 2, e - 1 - (gap - gap / 2));
        if a1 >= a0 {
            cell.span(img, horizontal, (a0, a1), (cb - t, cb + t), fg);
        }
    }
}

/// A light rounded corner; `hx`/`vy` point toward the horizontal/vertical arm (+1 right/down).
fn draw_arc(img: &mut RgbImage, cell: BoxCell, hx: i32, vy: i32, fg: Rgb<u8>) {
    let BoxCell { r, cx, cy } = cell;
    let radius = (cx - r.x0).min(r.x1 - 1 - cx).min(cy - r.y0).min(r.y1 - 1 - cy);
    // Circle centre in pixel-centre coordinates; the arc meets the straight arms exactly where
    // they sit in a neighbouring cell.
    let ox = (cx + hx * radius) as f32 + 0.5;
    let oy = (cy + vy * radius) as f32 + 0.5;
    let rf = radius as f32;
    for y in cy.min(cy + vy * radius)..=cy.max(cy + vy * radius) {
        for x in cx.min(cx + hx * radius)..=cx.max(cx + hx * radius) {
            let d = ((x as f32 + 0.5 - ox).powi(2) + (y as f32 + 0.5 - oy).powi(2)).sqrt();
            blend(img, r, x, y, fg, 1.0 - (d - rf).abs());
        }
    }
    let h_edge = if hx > 0 { r.x1 - 1 } else { r.x0 };
    let v_edge = if vy > 0 { r.y1 - 1 } else { r.y0 };
    cell.span(img, true, (cx + hx * radius, h_edge), (cy, cy), fg);
    cell.span(img, false, (cy + vy * radius, v_edge), (cx, cx), fg);
}

/// Antialiased corner-to-corner line, so that diagonals continue into neighbouring cells.
fn draw_diagonal(img: &mut RgbImage, cell: BoxCell, rising: bool, fg: Rgb<u8>) {
    let r = cell.r;
    let (w, h) = (r.width() as f32, r.height() as f32);
    let len = (w * w + h * h).sqrt();
    for y in r.y0..r.y1 {
        for x in r.x0..r.x1 {
            let px = (x - r.x0) as f32 + 0.5;
            let py = (y - r.y0) as f32 + 0.5;
            // Distance to the line through (0, h)-(w, 0) or (0, 0)-(w, h).
            let d = if rising {
                (h * px + w * py - w * h).abs() / len
            } else {
                (h * px - w * py).abs() / len
            };
            blend(img, r, x, y, fg, 1.0 - d);
        }
    }
}

// ----------------------------------------------------------------------------------------------
// Block elements (U+2580-U+259F) and Braille (U+2800-U+28FF)

/// `k` eighths of `total` pixels, rounded, so partial bars grow monotonically.
fn eighths(total: i32, k: i32) -> i32 {
    (total * k + 4) / 8
}

fn draw_block(img: &mut RgbImage, r: PxRect, c: char, fg: Rgb<u8>) {
    let r = PxRect {
        x1: r.x0 + CELL_WIDTH as i32,
        ..r
    };
    let (w, h) = (r.width(), r.height());
    let code = c as i32;
    let mid_x = r.x0 + eighths(w, 4);
    let mid_y = r.y0 + h / 2;
    let rect = |x0, y0, x1, y1| PxRect { x0, y0, x1, y1 };
    match c {
        '▀' => fill(img, r, rect(r.x0, r.y0, r.x1, mid_y), fg),
        '▁'..='█' => {
            let k = code - 0x2580;
            fill(img, r, rect(r.x0, r.y1 - eighths(h, k), r.x1, r.y1), fg);
        }
        '▉'..='▏' => {
            let k = 0x2590 - code;
            fill(img, r, rect(r.x0, r.y0, r.x0 + eighths(w, k), r.y1), fg);
        }
        '▐' => fill(img, r, rect(mid_x, r.y0, r.x1, r.y1), fg),
        '░' | '▒' | '▓' => {
            let alpha = (code - 0x2590) as f32 / 4.0;
            for y in r.y0..r.y1 {
                for x in r.x0..r.x1 {
                    blend(img, r, x, y, fg, alpha);
                }
            }
        }
        '▔' => fill(img, r, rect(r.x0, r.y0, r.x1, r.y0 + eighths(h, 1)), fg),
        '▕' => fill(img, r, rect(r.x1 - eighths(w, 1), r.y0, r.x1, r.y1), fg),
        _ => {
            // Quadrants: bit 1 upper left, 2 upper right, 4 lower left, 8 lower right.
            let bits = match c {
                '▖' => 4,
                '▗' => 8,
                '▘' => 1,
                '▙' => 1 | 4 | 8,
                '▚' => 1 | 8,
                '▛' => 1 | 2 | 4,
                '▜' => 1 | 2 | 8,
                '▝' => 2,
                '▞' => 2 | 4,
                '▟' => 2 | 4 | 8,
                _ => 0,
            };
            let quads = [
                (1, rect(r.x0, r.y0, mid_x, mid_y)),
                (2, rect(mid_x, r.y0, r.x1, mid_y)),
                (4, rect(r.x0, mid_y, mid_x, r.y1)),
                (8, rect(mid_x, mid_y, r.x1, r.y1)),
            ];
            for (bit, q) in quads {
                if bits & bit != 0 {
                    fill(img, r, q, fg);
                }
            }
        }
    }
}

/// Braille cells are what ratatui's charts and canvases plot with; 2x2 px dots on a 2x4 grid.
fn draw_braille(img: &mut RgbImage, r: PxRect, c: char, fg: Rgb<u8>) {
    let r = PxRect {
        x1: r.x0 + CELL_WIDTH as i32,
        ..r
    };
    let bits = c as u32 - 0x2800;
    // Unicode dot numbering: bit -> (column, row).
    const DOTS: [(i32, i32); 8] = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (0, 3), (1, 3)];
    for (bit, (col, row)) in DOTS.iter().enumerate() {
        if bits & (1 << bit) == 0 {
            continue;
        }
        // Dot centres at 1/4 and 3/4 of the width and 1/8, 3/8, 5/8, 7/8 of the height.
        let x = r.x0 + (r.width() * (2 * col + 1) - 2) / 4;
        let y = r.y0 + (r.height() * (2 * row + 1) - 4) / 8;
        fill(
            img,
            r,
            PxRect {
                x0: x,
                y0: y,
                x1: x + 2,
                y1: y + 2,
            },
            fg,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::layout::Rect;
    use ratatui::style::Style;

    fn buffer(width: u16, height: u16) -> Buffer {
        Buffer::empty(Rect::new(0, 0, width, height))
    }

    fn pixel(img: &RgbImage, x: u32, y: u32) -> Rgb<u8> {
        *img.get_pixel(x, y)
    }

    /// All pixels of cell (col, row).
    fn cell_pixels(img: &RgbImage, col: u32, row: u32) -> Vec<Rgb<u8>> {
        let mut out = Vec::new();
        for y in row * CELL_HEIGHT..(row + 1) * CELL_HEIGHT {
            for x in col * CELL_WIDTH..(col + 1) * CELL_WIDTH {
                out.push(pixel(img, x, y));
            }
        }
        out
    }

    #[test]
    fn image_size_is_cells_times_cell_size() {
        for (w, h) in [(1, 1), (7, 3), (80, 24)] {
            let img = render_png(&buffer(w, h));
            assert_eq!(img.dimensions(), (u32::from(w) * 9, u32::from(h) * 18), "{w}x{h}");
        }
    }

    #[test]
    fn empty_buffer_is_default_background() {
        let img = render_png(&buffer(3, 2));
        assert!(img.pixels().all(|p| *p == DEFAULT_BG));
    }

    #[test]
    fn background_colour_stays_in_its_cell() {
        let mut buf = buffer(3, 1);
        buf[(1, 0)].set_bg(Color::Red);
        let img = render_png(&buf);
        assert_eq!(pixel(&img, 9 + 4, 9), ANSI[1]);
        assert!(cell_pixels(&img, 1, 0).iter().all(|p| *p == ANSI[1]));
        assert!(cell_pixels(&img, 0, 0).iter().all(|p| *p == DEFAULT_BG));
        assert!(cell_pixels(&img, 2, 0).iter().all(|p| *p == DEFAULT_BG));
    }

    #[test]
    fn horizontal_line_is_continuous_across_cells() {
        let mut buf = buffer(4, 1);
        buf.set_string(0, 0, "────", Style::default());
        let img = render_png(&buf);
        let row: Vec<_> = (0..36).map(|x| pixel(&img, x, 8)).collect();
        assert!(row.iter().all(|p| *p == DEFAULT_FG), "{row:?}");
        // Exactly one pixel thick.
        assert!((0..36).all(|x| pixel(&img, x, 7) == DEFAULT_BG && pixel(&img, x, 9) == DEFAULT_BG));
    }

    #[test]
    fn vertical_line_is_continuous_across_rows() {
        let mut buf = buffer(1, 3);
        for y in 0..3 {
            buf.set_string(0, y, "│", Style::default());
        }
        let img = render_png(&buf);
        assert!((0..54).all(|y| pixel(&img, 4, y) == DEFAULT_FG));
        assert!((0..54).all(|y| pixel(&img, 3, y) == DEFAULT_BG && pixel(&img, 5, y) == DEFAULT_BG));
    }

    #[test]
    fn box_corners_and_tees_join_lines() {
        // ┌─┐ / ├─┤ / └─┘: the outline must be one unbroken 1-px path.
        let mut buf = buffer(3, 3);
        buf.set_string(0, 0, "┌─┐", Style::default());
        buf.set_string(0, 1, "├─┤", Style::default());
        buf.set_string(0, 2, "└─┘", Style::default());
        let img = render_png(&buf);
        for y in [8, 18 + 8, 36 + 8] {
            assert!((4..=22).all(|x| pixel(&img, x, y) == DEFAULT_FG), "row {y}");
        }
        for x in [4, 22] {
            assert!((8..=44).all(|y| pixel(&img, x, y) == DEFAULT_FG), "col {x}");
        }
        // Nothing pokes out past the corners.
        assert_eq!(pixel(&img, 3, 8), DEFAULT_BG);
        assert_eq!(pixel(&img, 4, 7), DEFAULT_BG);
        assert_eq!(pixel(&img, 23, 8), DEFAULT_BG);
    }

    #[test]
    fn double_box_tracks_connect() {
        let mut buf = buffer(3, 2);
        buf.set_string(0, 0, "╔═╗", Style::default());
        buf.set_string(0, 1, "║ ║", Style::default());
        let img = render_png(&buf);
        // Outer track of the top edge runs from the left corner's outer column to the right's.
        assert!((2..=24).all(|x| pixel(&img, x, 6) == DEFAULT_FG));
        // Inner track starts at the inner column.
        assert!((6..=20).all(|x| pixel(&img, x, 10) == DEFAULT_FG));
        assert_eq!(pixel(&img, 5, 10), DEFAULT_BG);
        // Left outer column runs down into the ║ below.
        assert!((6..36).all(|y| pixel(&img, 2, y) == DEFAULT_FG));
        assert!((10..36).all(|y| pixel(&img, 6, y) == DEFAULT_FG));
    }

    #[test]
    fn rounded_corner_meets_straight_neighbours() {
        let mut buf = buffer(2, 2);
        buf.set_string(0, 0, "╭─", Style::default());
        buf.set_string(0, 1, "│ ", Style::default());
        let img = render_png(&buf);
        assert_eq!(pixel(&img, 8, 8), DEFAULT_FG);
        assert_eq!(pixel(&img, 4, 17), DEFAULT_FG);
        // The corner point itself is cut off by the curve.
        assert_eq!(pixel(&img, 4, 8), DEFAULT_BG);
    }

    #[test]
    fn letter_draws_only_inside_its_cell() {
        let mut buf = buffer(3, 1);
        buf.set_string(1, 0, "A", Style::default().fg(Color::Rgb(255, 255, 0)));
        let img = render_png(&buf);
        let inside = cell_pixels(&img, 1, 0);
        let strong = inside
            .iter()
            .filter(|p| p.0[0] > 200 && p.0[1] > 200 && p.0[2] < 100)
            .count();
        assert!(strong > 10, "only {strong} yellow pixels");
        assert!(cell_pixels(&img, 0, 0).iter().all(|p| *p == DEFAULT_BG));
        assert!(cell_pixels(&img, 2, 0).iter().all(|p| *p == DEFAULT_BG));
    }

    #[test]
    fn bold_uses_a_heavier_face() {
        let ink = |style: Style| {
            let mut buf = buffer(1, 1);
            buf.set_string(0, 0, "M", style);
            render_png(&buf)
                .pixels()
                .map(|p| u32::from(p.0[0]) - u32::from(DEFAULT_BG.0[0]))
                .sum::<u32>()
        };
        let regular = ink(Style::default());
        let bold = ink(Style::default().add_modifier(Modifier::BOLD));
        assert!(bold > regular + regular / 10, "bold {bold} vs regular {regular}");
    }

    #[test]
    fn png_bytes_are_deterministic_and_decode() {
        let mut buf = buffer(12, 3);
        buf.set_string(0, 0, "┌─TLS 1.3─┐", Style::default().fg(Color::Green));
        buf.set_string(0, 1, "│ ▁▃▅█ 世 │", Style::default().bg(Color::Indexed(236)));
        buf.set_string(0, 2, "└ ░▒▓ ⣿ ─┘", Style::default().add_modifier(Modifier::BOLD));
        let a = png_bytes(&buf).expect("encode");
        let b = png_bytes(&buf).expect("encode");
        assert_eq!(a, b);
        let decoded = image::load_from_memory(&a).expect("decode");
        assert_eq!((decoded.width(), decoded.height()), (12 * 9, 3 * 18));
        assert_eq!(decoded.to_rgb8(), render_png(&buf));
    }

    #[test]
    fn reversed_swaps_colours() {
        let mut buf = buffer(3, 1);
        let style = Style::default()
            .fg(Color::Rgb(10, 20, 30))
            .bg(Color::Rgb(200, 100, 50))
            .add_modifier(Modifier::REVERSED);
        buf.set_string(0, 0, " █", style);
        buf.set_string(2, 0, " ", Style::default().add_modifier(Modifier::REVERSED));
        let img = render_png(&buf);
        assert!(cell_pixels(&img, 0, 0).iter().all(|p| *p == Rgb([10, 20, 30])));
        assert!(cell_pixels(&img, 1, 0).iter().all(|p| *p == Rgb([200, 100, 50])));
        assert!(cell_pixels(&img, 2, 0).iter().all(|p| *p == DEFAULT_FG));
    }

    #[test]
    fn dim_blends_foreground_toward_background() {
        let mut buf = buffer(1, 1);
        let style = Style::default()
            .fg(Color::Rgb(200, 200, 200))
            .bg(Color::Rgb(0, 0, 0))
            .add_modifier(Modifier::DIM);
        buf.set_string(0, 0, "█", style);
        let img = render_png(&buf);
        assert!(img.pixels().all(|p| *p == Rgb([100, 100, 100])));
    }

    #[test]
    fn underline_is_one_pixel_row_near_the_bottom() {
        let mut buf = buffer(2, 1);
        buf.set_string(0, 0, "  ", Style::default().add_modifier(Modifier::UNDERLINED));
        let img = render_png(&buf);
        for y in 0..18 {
            let want = if y == 16 { DEFAULT_FG } else { DEFAULT_BG };
            assert!((0..18).all(|x| pixel(&img, x, y) == want), "row {y}");
        }
    }

    #[test]
    fn wide_character_spans_two_cells_with_its_background() {
        let mut buf = buffer(4, 1);
        buf.set_string(1, 0, "世", Style::default().bg(Color::Blue));
        assert_eq!(buf[(2, 0)].symbol(), " ");
        let img = render_png(&buf);
        assert!((9..27).all(|x| pixel(&img, x, 17) == ANSI[4]));
        assert!(cell_pixels(&img, 0, 0).iter().all(|p| *p == DEFAULT_BG));
        assert!(cell_pixels(&img, 3, 0).iter().all(|p| *p == DEFAULT_BG));
        // Something is drawn across the two cells (a glyph or the font's missing-glyph box).
        let ink = (9..27)
            .flat_map(|x| (0..18).map(move |y| (x, y)))
            .filter(|&(x, y)| pixel(&img, x, y) != ANSI[4])
            .count();
        assert!(ink > 0);
    }

    #[test]
    fn partial_blocks_fill_from_the_bottom_and_left() {
        let mut buf = buffer(3, 1);
        buf.set_string(0, 0, "▄▌█", Style::default());
        let img = render_png(&buf);
        for y in 0..18 {
            let want = if y >= 9 { DEFAULT_FG } else { DEFAULT_BG };
            assert!((0..9).all(|x| pixel(&img, x, y) == want), "▄ row {y}");
        }
        assert!((0..18).all(|y| pixel(&img, 9 + 4, y) == DEFAULT_FG));
        assert!((0..18).all(|y| pixel(&img, 9 + 5, y) == DEFAULT_BG));
        assert!(cell_pixels(&img, 2, 0).iter().all(|p| *p == DEFAULT_FG));
    }

    #[test]
    fn sparkline_eighths_grow_monotonically() {
        let heights: Vec<i32> = (1..=8).map(|k| eighths(18, k)).collect();
        assert!(heights.windows(2).all(|w| w[0] < w[1]), "{heights:?}");
        assert_eq!(heights[7], 18);
        let widths: Vec<i32> = (1..=8).map(|k| eighths(9, k)).collect();
        assert!(widths.windows(2).all(|w| w[0] < w[1]), "{widths:?}");
        assert_eq!(widths[7], 9);
    }

    #[test]
    fn shade_is_a_blend() {
        let mut buf = buffer(1, 1);
        let style = Style::default().fg(Color::Rgb(200, 0, 0)).bg(Color::Rgb(0, 0, 0));
        buf.set_string(0, 0, "▒", style);
        let img = render_png(&buf);
        assert!(img.pixels().all(|p| *p == Rgb([100, 0, 0])));
    }

    #[test]
    fn braille_dots_are_drawn() {
        let mut buf = buffer(2, 1);
        buf.set_string(0, 0, "⣿⠀", Style::default());
        let img = render_png(&buf);
        let lit = cell_pixels(&img, 0, 0).iter().filter(|p| **p == DEFAULT_FG).count();
        assert_eq!(lit, 8 * 4);
        assert!(cell_pixels(&img, 1, 0).iter().all(|p| *p == DEFAULT_BG));
    }

    #[test]
    fn xterm_palette() {
        assert_eq!(xterm256(16), Rgb([0, 0, 0]));
        assert_eq!(xterm256(196), Rgb([255, 0, 0]));
        assert_eq!(xterm256(231), Rgb([255, 255, 255]));
        assert_eq!(xterm256(232), Rgb([8, 8, 8]));
        assert_eq!(xterm256(255), Rgb([238, 238, 238]));
        assert_eq!(rgb(Color::Indexed(1)), rgb(Color::Red));
        assert_eq!(rgb(Color::Reset), None);
    }

    #[test]
    fn escape_sequences_are_not_drawn() {
        let link = "\x1b]8;;https://example.com\x1b\\ab\x1b]8;;\x07\x1b[1mc";
        assert_eq!(strip_escapes(link), "abc");
    }

    #[test]
    fn pixels_are_compared_not_png_bytes() {
        use image::ImageEncoder;
        use image::codecs::png::{CompressionType, FilterType, PngEncoder};

        let mut buf = buffer(4, 2);
        buf.set_string(0, 0, "TLS", Style::default());
        let drawn = render_png(&buf);
        let committed = png_bytes(&buf).expect("png");
        assert_eq!(pixel_difference(&committed, &drawn), None);

        // The same pixels encoded differently (as an optimiser would) are not a difference.
        let mut reencoded = Vec::new();
        PngEncoder::new_with_quality(&mut reencoded, CompressionType::Best, FilterType::Paeth)
            .write_image(
                drawn.as_raw(),
                drawn.width(),
                drawn.height(),
                image::ExtendedColorType::Rgb8,
            )
            .expect("encode");
        assert_ne!(reencoded, committed);
        assert_eq!(pixel_difference(&reencoded, &drawn), None);

        // One pixel changed in the second row's third cell is found and located.
        let mut changed = drawn.clone();
        changed.put_pixel(2 * CELL_WIDTH + 1, CELL_HEIGHT + 3, Rgb([1, 2, 3]));
        assert_eq!(
            pixel_difference(&committed, &changed).as_deref(),
            Some("1 pixels differ, the first in terminal cell column 2 row 1")
        );

        let other_size = render_png(&buffer(5, 2));
        assert_eq!(
            pixel_difference(&committed, &other_size).as_deref(),
            Some("36x36 pixels committed, 45x36 drawn")
        );
        assert!(pixel_difference(b"not a png", &drawn).is_some_and(|d| d.starts_with("not a readable PNG")));
    }
}
