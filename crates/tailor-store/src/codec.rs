//! Binary layout of an event chunk: many events in one value, column by column.
//!
//! Models read only the numeric columns (user, item, kind, time, quantity, rating) of
//! millions of events; keeping those as fixed-width little-endian arrays lets a scan
//! walk them without allocating or decoding strings. Strings (session, order, context...)
//! follow in one variable-length section read only by full scans such as export.
//!
//! ```text
//! u8 version (=1) | u32 n
//! [u128; n] id | [u32; n] user (u32::MAX = anonymous) | [u32; n] item (u32::MAX = none)
//! [u8; n] kind | [i64; n] ts (ms) | [u32; n] quantity | [f64; n] unit price (NaN = none)
//! [f32; n] rating (NaN = none) | per event: u16 field mask, then each set field as
//! varint length + UTF-8 bytes, in STRING_FIELDS order
//! ```

use tailor_core::{Context, Event, EventId, EventKind, ItemId, Timestamp, UserId};

/// Marker for "no user" / "no item" in the dense columns.
pub const NONE: u32 = u32::MAX;
const VERSION: u8 = 1;
const HEADER: usize = 5;
/// Bytes per event in the fixed-width columns.
const FIXED: usize = 16 + 4 + 4 + 1 + 8 + 4 + 8 + 4;

/// An event with its dense ids resolved, ready to encode.
pub struct EncodedEvent<'a> {
    /// The event's idempotency id.
    pub id: EventId,
    /// Dense user index or [`NONE`].
    pub user: u32,
    /// Dense item index or [`NONE`].
    pub item: u32,
    /// The event itself (strings are taken from here).
    pub event: &'a Event,
}

fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn strings(e: &Event) -> [Option<&str>; 12] {
    let c = &e.context;
    [
        e.session.as_deref(),
        e.order_id.as_deref(),
        e.rec_id.as_deref(),
        e.query.as_deref(),
        c.device.as_deref(),
        c.country.as_deref(),
        c.region.as_deref(),
        c.city.as_deref(),
        c.channel.as_deref(),
        c.page.as_deref(),
        c.slot.as_deref(),
        c.referrer.as_deref(),
    ]
}

/// Encodes events into one chunk.
pub fn encode(events: &[EncodedEvent<'_>]) -> Vec<u8> {
    let n = events.len();
    let mut out = Vec::with_capacity(HEADER + n * (FIXED + 4));
    out.push(VERSION);
    out.extend_from_slice(&(n as u32).to_le_bytes());
    for e in events {
        out.extend_from_slice(&e.id.0.to_le_bytes());
    }
    for e in events {
        out.extend_from_slice(&e.user.to_le_bytes());
    }
    for e in events {
        out.extend_from_slice(&e.item.to_le_bytes());
    }
    for e in events {
        out.push(e.event.kind.code());
    }
    for e in events {
        out.extend_from_slice(&e.event.ts.0.to_le_bytes());
    }
    for e in events {
        out.extend_from_slice(&e.event.quantity.to_le_bytes());
    }
    for e in events {
        out.extend_from_slice(&e.event.unit_price.unwrap_or(f64::NAN).to_le_bytes());
    }
    for e in events {
        out.extend_from_slice(&e.event.rating.unwrap_or(f32::NAN).to_le_bytes());
    }
    for e in events {
        let fields = strings(e.event);
        let mask = fields.iter().enumerate().fold(0u16, |m, (i, f)| if f.is_some() { m | (1 << i) } else { m });
        out.extend_from_slice(&mask.to_le_bytes());
        for s in fields.into_iter().flatten() {
            put_varint(&mut out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

/// Zero-copy view of a chunk's columns.
#[derive(Clone, Copy)]
pub struct ChunkView<'a> {
    n: usize,
    bytes: &'a [u8],
}

/// The chunk bytes do not match the layout (a bug or on-disk corruption).
#[derive(Debug)]
pub struct Corrupt(pub &'static str);

macro_rules! column {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $offset:expr, $width:expr) => {
        $(#[$doc])*
        #[inline]
        pub fn $name(&self, i: usize) -> $ty {
            let at = HEADER + self.n * $offset + i * $width;
            let mut b = [0u8; $width];
            b.copy_from_slice(&self.bytes[at..at + $width]);
            <$ty>::from_le_bytes(b)
        }
    };
}

impl<'a> ChunkView<'a> {
    /// Checks the header and sizes.
    pub fn new(bytes: &'a [u8]) -> Result<Self, Corrupt> {
        if bytes.len() < HEADER || bytes[0] != VERSION {
            return Err(Corrupt("unknown event chunk version"));
        }
        let n = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
        if bytes.len() < HEADER + n * (FIXED + 2) {
            return Err(Corrupt("event chunk is truncated"));
        }
        Ok(Self { n, bytes })
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True for an empty chunk.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    column!(
        /// Event id bits.
        id_bits, u128, 0, 16
    );
    column!(
        /// Dense user index or [`NONE`].
        user, u32, 16, 4
    );
    column!(
        /// Dense item index or [`NONE`].
        item, u32, 20, 4
    );
    column!(
        /// Timestamp in ms.
        ts, i64, 25, 8
    );
    column!(
        /// Units in the line (1 for events without a quantity).
        quantity, u32, 33, 4
    );
    column!(
        /// Unit price, NaN when absent.
        price, f64, 37, 8
    );
    column!(
        /// Rating, NaN when absent.
        rating, f32, 45, 4
    );

    /// Event kind.
    #[inline]
    pub fn kind(&self, i: usize) -> EventKind {
        EventKind::from_code(self.bytes[HEADER + self.n * 24 + i]).unwrap_or(EventKind::View)
    }

    /// Decodes every event, resolving dense ids to names with `user_name` / `item_name`.
    pub fn decode_all(
        &self,
        user_name: &dyn Fn(u32) -> Option<String>,
        item_name: &dyn Fn(u32) -> Option<String>,
    ) -> Result<Vec<(EventId, Event)>, Corrupt> {
        self.decode_where(&|_| true, user_name, item_name)
    }

    /// Decodes the events `keep` (given an index) accepts; the others' strings are only
    /// skipped over, not allocated.
    pub fn decode_where(
        &self,
        keep: &dyn Fn(usize) -> bool,
        user_name: &dyn Fn(u32) -> Option<String>,
        item_name: &dyn Fn(u32) -> Option<String>,
    ) -> Result<Vec<(EventId, Event)>, Corrupt> {
        let mut pos = HEADER + self.n * FIXED;
        let mut out = Vec::new();
        for i in 0..self.n {
            let mask_bytes = self.bytes.get(pos..pos + 2).ok_or(Corrupt("string section is truncated"))?;
            let mask = u16::from_le_bytes([mask_bytes[0], mask_bytes[1]]);
            pos += 2;
            let wanted = keep(i);
            let mut fields: [Option<String>; 12] = Default::default();
            for (f, slot) in fields.iter_mut().enumerate() {
                if mask & (1 << f) == 0 {
                    continue;
                }
                let mut len = 0usize;
                let mut shift = 0;
                loop {
                    let b = *self.bytes.get(pos).ok_or(Corrupt("string length is truncated"))?;
                    pos += 1;
                    len |= usize::from(b & 0x7f) << shift;
                    shift += 7;
                    if b & 0x80 == 0 {
                        break;
                    }
                    if shift > 56 {
                        return Err(Corrupt("string length is too long"));
                    }
                }
                let raw = self.bytes.get(pos..pos + len).ok_or(Corrupt("string is truncated"))?;
                if wanted {
                    *slot = Some(std::str::from_utf8(raw).map_err(|_| Corrupt("string is not UTF-8"))?.to_owned());
                }
                pos += len;
            }
            if !wanted {
                continue;
            }
            let [session, order_id, rec_id, query, device, country, region, city, channel, page, slot, referrer] =
                fields;
            let user = match self.user(i) {
                NONE => None,
                u => Some(UserId(user_name(u).ok_or(Corrupt("unknown user index"))?)),
            };
            let item = match self.item(i) {
                NONE => None,
                it => Some(ItemId(item_name(it).ok_or(Corrupt("unknown item index"))?)),
            };
            let price = self.price(i);
            let rating = self.rating(i);
            let id = EventId(self.id_bits(i));
            out.push((
                id,
                Event {
                    id: Some(id),
                    user,
                    session,
                    item,
                    kind: self.kind(i),
                    ts: Timestamp(self.ts(i)),
                    quantity: self.quantity(i),
                    unit_price: (!price.is_nan()).then_some(price),
                    order_id,
                    context: Context { device, country, region, city, channel, page, slot, referrer },
                    rec_id,
                    rating: (!rating.is_nan()).then_some(rating),
                    query,
                },
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut a = Event::new(Some("u"), Some("i"), EventKind::Purchase, Timestamp(123));
        a.unit_price = Some(9.5);
        a.quantity = 2;
        a.order_id = Some("o1".into());
        a.context.device = Some("mobile".into());
        a.context.referrer = Some("x".repeat(300));
        let mut b = Event::new(None, None, EventKind::Search, Timestamp(456));
        b.session = Some("s".into());
        b.query = Some("red shoes".into());
        let mut c = Event::new(Some("u"), Some("i"), EventKind::Rating, Timestamp(789));
        c.rating = Some(4.0);
        let evs = [&a, &b, &c];
        let enc: Vec<EncodedEvent<'_>> = evs
            .iter()
            .enumerate()
            .map(|(k, e)| EncodedEvent {
                id: EventId(k as u128 + 1),
                user: if e.user.is_some() { 0 } else { NONE },
                item: if e.item.is_some() { 0 } else { NONE },
                event: e,
            })
            .collect();
        let bytes = encode(&enc);
        let view = ChunkView::new(&bytes).expect("valid");
        assert_eq!(view.len(), 3);
        assert_eq!(view.kind(1), EventKind::Search);
        let names = |_: u32| Some(String::from("u"));
        let items = |_: u32| Some(String::from("i"));
        let back = view.decode_all(&names, &items).expect("decodes");
        for (k, (id, e)) in back.into_iter().enumerate() {
            let mut want = evs[k].clone();
            want.id = Some(EventId(k as u128 + 1));
            assert_eq!(id, EventId(k as u128 + 1));
            assert_eq!(e, want);
        }
        assert!(ChunkView::new(&bytes[..10]).is_err());
    }
}
