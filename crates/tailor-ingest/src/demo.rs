//! The demo shop: a deterministic synthetic e-commerce data set whose users follow hidden
//! shopper archetypes that really drive what they browse, buy and return.
//!
//! Archetypes (hidden truth, returned by [`generate`] but never stored with the users):
//! - trend-conscious: young, urban, mobile, evenings; chases new arrivals, returns more;
//! - price-sensitive: compares a lot, buys budget brands and discounted items;
//! - luxury seeker: few sessions, premium and luxury brands, desktop/tablet, high AOV;
//! - occasional browser: rare short sessions, popular items, low conversion;
//! - loyal regular: frequent, converts well, sticks to favourite brands.
//!
//! Context matters: on mobile in the evening people browse fashion and beauty more, on
//! desktop during the day electronics and home; weekends bring more sessions; the last week
//! is a sale that draws price-sensitive shoppers.

use serde::Serialize;
use tailor_core::rng::Rng;
use tailor_core::{Event, EventKind, Item, Timestamp, Urbanicity, User};

/// Hidden shopper archetypes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Archetype {
    /// Follows trends and new arrivals.
    TrendConscious,
    /// Hunts discounts and budget brands.
    PriceSensitive,
    /// Buys premium and luxury brands.
    LuxurySeeker,
    /// Visits rarely, buys little.
    OccasionalBrowser,
    /// Visits often, converts well, brand-loyal.
    LoyalRegular,
}

impl Archetype {
    /// All archetypes.
    pub const ALL: [Archetype; 5] =
        [Self::TrendConscious, Self::PriceSensitive, Self::LuxurySeeker, Self::OccasionalBrowser, Self::LoyalRegular];

    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TrendConscious => "trend_conscious",
            Self::PriceSensitive => "price_sensitive",
            Self::LuxurySeeker => "luxury_seeker",
            Self::OccasionalBrowser => "occasional_browser",
            Self::LoyalRegular => "loyal_regular",
        }
    }

    fn behaviour(self) -> Behaviour {
        match self {
            Self::TrendConscious => Behaviour {
                share: 0.20,
                sessions_per_day: 0.32,
                views: 7.0,
                cart: 0.10,
                buy: 0.45,
                ret: 0.15,
                tiers: [0.8, 1.5, 1.0, 0.3],
                sale: 1.0,
                new: 6.0,
                loyal: 1.0,
                hours: [0.3, 0.2, 0.8, 1.0, 1.4, 2.4],
            },
            Self::PriceSensitive => Behaviour {
                share: 0.25,
                sessions_per_day: 0.24,
                views: 9.0,
                cart: 0.06,
                buy: 0.50,
                ret: 0.05,
                tiers: [3.0, 1.0, 0.25, 0.05],
                sale: 5.0,
                new: 0.8,
                loyal: 1.0,
                hours: [0.2, 0.4, 0.8, 1.6, 0.8, 1.6],
            },
            Self::LuxurySeeker => Behaviour {
                share: 0.10,
                sessions_per_day: 0.12,
                views: 4.0,
                cart: 0.12,
                buy: 0.60,
                ret: 0.08,
                tiers: [0.05, 0.3, 2.0, 4.0],
                sale: 0.5,
                new: 1.5,
                loyal: 1.5,
                hours: [0.1, 0.6, 1.2, 1.2, 1.4, 0.8],
            },
            Self::OccasionalBrowser => Behaviour {
                share: 0.30,
                sessions_per_day: 0.05,
                views: 3.0,
                cart: 0.03,
                buy: 0.30,
                ret: 0.05,
                tiers: [1.0, 1.2, 0.6, 0.2],
                sale: 1.2,
                new: 1.0,
                loyal: 1.0,
                hours: [0.2, 0.6, 1.0, 1.4, 1.2, 1.0],
            },
            Self::LoyalRegular => Behaviour {
                share: 0.15,
                sessions_per_day: 0.30,
                views: 5.0,
                cart: 0.15,
                buy: 0.70,
                ret: 0.03,
                tiers: [0.7, 1.5, 1.0, 0.4],
                sale: 1.0,
                new: 1.0,
                loyal: 8.0,
                hours: [0.4, 1.6, 0.8, 0.7, 1.4, 0.8],
            },
        }
    }
}

struct Behaviour {
    share: f64,
    sessions_per_day: f64,
    views: f64,
    cart: f64,
    buy: f64,
    ret: f64,
    /// Affinity for budget, mid, premium, luxury brands.
    tiers: [f64; 4],
    /// Boost for discounted items.
    sale: f64,
    /// Boost for new arrivals.
    new: f64,
    /// Boost for the user's favourite brands.
    loyal: f64,
    /// Relative activity in 4-hour blocks from midnight.
    hours: [f64; 6],
}

/// Parameters of the demo shop.
#[derive(Debug, Clone, Serialize)]
pub struct DemoParams {
    /// Seed; the same seed gives the same shop.
    pub seed: u64,
    /// Registered users.
    pub users: usize,
    /// Items in the generated catalog.
    pub items: usize,
    /// Days of history.
    pub days: u32,
    /// Anonymous (never logged-in) visitor sessions.
    pub anonymous_sessions: usize,
    /// End of the history (exclusive).
    pub end: Timestamp,
    /// Add a history of recommendation traffic: some sessions were shown a list of items
    /// (impression events with a `rec_id`), and views, carts and purchases of listed items
    /// in that session carry the list's `rec_id` (see [`recommendation_traffic`]).
    pub rec_traffic: bool,
}

impl Default for DemoParams {
    fn default() -> Self {
        Self {
            seed: 42,
            users: 5000,
            items: 2000,
            days: 60,
            anonymous_sessions: 3000,
            end: Timestamp(1_793_491_200_000),
            rec_traffic: true,
        }
    }
}

/// A generated shop.
#[derive(Debug, Clone)]
pub struct DemoShop {
    /// The catalog, ids `p0001`... in order.
    pub items: Vec<Item>,
    /// Users with demographics.
    pub users: Vec<User>,
    /// Events in time order.
    pub events: Vec<Event>,
    /// Each user's hidden archetype, aligned with `users`.
    pub archetypes: Vec<Archetype>,
}

const CATEGORIES: &[(&str, &str, &str, f64)] = &[
    ("Women", "Shoes", "Sneakers", 70.0),
    ("Women", "Shoes", "Boots", 110.0),
    ("Women", "Shoes", "Sandals", 45.0),
    ("Women", "Clothing", "Dresses", 60.0),
    ("Women", "Clothing", "Tops", 30.0),
    ("Women", "Clothing", "Jeans", 55.0),
    ("Women", "Accessories", "Bags", 90.0),
    ("Women", "Accessories", "Jewelry", 80.0),
    ("Men", "Shoes", "Sneakers", 75.0),
    ("Men", "Shoes", "Boots", 120.0),
    ("Men", "Clothing", "Shirts", 40.0),
    ("Men", "Clothing", "Jeans", 60.0),
    ("Men", "Clothing", "Jackets", 110.0),
    ("Men", "Accessories", "Watches", 150.0),
    ("Men", "Accessories", "Belts", 35.0),
    ("Home", "Kitchen", "Cookware", 55.0),
    ("Home", "Kitchen", "Coffee", 80.0),
    ("Home", "Living", "Lighting", 65.0),
    ("Home", "Living", "Decor", 35.0),
    ("Home", "Bedroom", "Bedding", 70.0),
    ("Electronics", "Audio", "Headphones", 90.0),
    ("Electronics", "Audio", "Speakers", 120.0),
    ("Electronics", "Phones", "Cases", 20.0),
    ("Electronics", "Phones", "Chargers", 25.0),
    ("Electronics", "Computers", "Laptops", 700.0),
    ("Electronics", "Computers", "Keyboards", 60.0),
    ("Beauty", "Skincare", "Moisturizers", 25.0),
    ("Beauty", "Skincare", "Serums", 35.0),
    ("Beauty", "Makeup", "Lipstick", 18.0),
    ("Beauty", "Makeup", "Foundation", 30.0),
    ("Beauty", "Fragrance", "Perfume", 70.0),
    ("Sports", "Fitness", "Yoga", 30.0),
    ("Sports", "Fitness", "Weights", 50.0),
    ("Sports", "Outdoor", "Hiking", 90.0),
    ("Sports", "Outdoor", "Camping", 80.0),
];
const TOPS: [&str; 6] = ["Women", "Men", "Home", "Electronics", "Beauty", "Sports"];
const TIERS: [(&str, f64); 4] = [("budget", 0.55), ("mid", 1.0), ("premium", 2.0), ("luxury", 4.5)];
const SYLLABLES: [&str; 20] = [
    "nor", "ve", "lux", "ka", "mi", "ra", "so", "ta", "zen", "do", "ar", "bel", "co", "fi", "lo", "ma", "ni", "qu",
    "vi", "xo",
];
const ADJECTIVES: [&str; 12] = [
    "Classic",
    "Essential",
    "Urban",
    "Premium",
    "Everyday",
    "Signature",
    "Studio",
    "Nova",
    "Heritage",
    "Active",
    "Soft",
    "Bold",
];
const COLORS: [&str; 8] = ["black", "white", "navy", "red", "beige", "green", "grey", "pink"];
const MATERIALS: [&str; 6] = ["cotton", "leather", "steel", "wool", "recycled", "ceramic"];
const REGIONS: [(&str, [&str; 3], f64); 5] = [
    ("London", ["London", "Croydon", "Barnet"], 0.9),
    ("South East", ["Brighton", "Reading", "Oxford"], 0.55),
    ("North West", ["Manchester", "Liverpool", "Preston"], 0.6),
    ("Midlands", ["Birmingham", "Nottingham", "Leicester"], 0.5),
    ("Scotland", ["Glasgow", "Edinburgh", "Aberdeen"], 0.45),
];
const DEVICES: [&str; 3] = ["mobile", "desktop", "tablet"];
const DAY_MS: i64 = 86_400_000;

/// Top-category affinity of each archetype, in [`TOPS`] order.
fn top_affinity(a: Archetype, female: bool) -> [f64; 6] {
    let (w, m) = if female { (1.6, 0.35) } else { (0.35, 1.6) };
    match a {
        Archetype::TrendConscious => [2.0 * w, 2.0 * m, 0.4, 0.8, 1.5 * w + 0.2, 0.6],
        Archetype::PriceSensitive => [w, m, 1.6, 1.2, 0.8, 0.8],
        Archetype::LuxurySeeker => [1.5 * w, 1.5 * m, 0.8, 0.8, 1.4, 0.3],
        Archetype::OccasionalBrowser => [w, m, 1.0, 1.0, 0.7, 0.8],
        Archetype::LoyalRegular => [w, m, 1.8, 0.8, 1.0, 1.2],
    }
}

/// Context effect on top categories: device × evening.
fn context_boost(top: usize, device: usize, evening: bool) -> f64 {
    let fashion = matches!(top, 0 | 1 | 4);
    match (device, evening) {
        (0, true) if fashion => 1.8,
        (0, _) if top == 3 => 0.6,
        (1, false) if matches!(top, 2 | 3) => 1.8,
        (1, _) if fashion => 0.8,
        (2, _) if top == 2 => 1.4,
        _ => 1.0,
    }
}

struct Catalog {
    items: Vec<Item>,
    leaf_of: Vec<usize>,
    tier_of: Vec<usize>,
    brand_of: Vec<usize>,
    popularity: Vec<f64>,
    by_leaf: Vec<Vec<usize>>,
    brands_by_top: Vec<Vec<usize>>,
}

fn brand_name(rng: &mut Rng) -> String {
    let n = 2 + rng.below(2);
    let mut s: String = (0..n).map(|_| SYLLABLES[rng.below(SYLLABLES.len())]).collect();
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    s
}

fn catalog(p: &DemoParams, rng: &mut Rng) -> Catalog {
    let start = p.end.0 - i64::from(p.days) * DAY_MS;
    // Eight brands per top category, two of each tier.
    let mut brands: Vec<(String, usize, usize)> = Vec::new();
    let mut brands_by_top = vec![Vec::new(); TOPS.len()];
    for (t, list) in brands_by_top.iter_mut().enumerate() {
        for k in 0..8 {
            list.push(brands.len());
            brands.push((brand_name(rng), t, k % 4));
        }
    }
    let mut c = Catalog {
        items: vec![],
        leaf_of: vec![],
        tier_of: vec![],
        brand_of: vec![],
        popularity: vec![],
        by_leaf: vec![Vec::new(); CATEGORIES.len()],
        brands_by_top,
    };
    for k in 0..p.items {
        let leaf = rng.below(CATEGORIES.len());
        let (top, mid, name, base) = CATEGORIES[leaf];
        let t = TOPS.iter().position(|x| *x == top).unwrap_or(0);
        let b = c.brands_by_top[t][rng.below(8)];
        let (brand, _, tier) = &brands[b];
        let price = (base * TIERS[*tier].1 * (0.25 * rng.normal()).exp()).max(3.0);
        let price = (price.round() - 0.01).max(2.99);
        let mut item = Item::new(&format!("SKU-{:05}", k + 1));
        let adj = ADJECTIVES[rng.below(ADJECTIVES.len())];
        let color = COLORS[rng.below(COLORS.len())];
        let material = MATERIALS[rng.below(MATERIALS.len())];
        item.title = Some(format!("{brand} {adj} {name}"));
        item.description = Some(format!(
            "{adj} {} {} from {brand}, made of {material}. A {} {} pick.",
            color,
            name.to_lowercase(),
            TIERS[*tier].0,
            mid.to_lowercase()
        ));
        item.category = vec![top.to_owned(), mid.to_owned(), name.to_owned()];
        item.brand = Some(brand.clone());
        item.price = Some(price);
        item.currency = Some("GBP".into());
        item.attributes.insert("color".into(), color.into());
        item.attributes.insert("material".into(), material.into());
        item.attributes.insert("price_tier".into(), TIERS[*tier].0.into());
        item.tags = vec![TIERS[*tier].0.to_owned(), mid.to_lowercase()];
        // Budget brands discount more often.
        if rng.chance([0.40, 0.25, 0.15, 0.08][*tier]) {
            item.sale_price = Some(((price * (0.6 + 0.25 * rng.f64())) * 100.0).round() / 100.0);
            item.tags.push("sale".into());
        }
        item.created_at = Some(Timestamp(if rng.chance(0.15) {
            item.tags.push("new".into());
            start + (rng.f64() * (p.end.0 - start) as f64) as i64
        } else {
            start - (rng.f64() * 365.0 * DAY_MS as f64) as i64 - DAY_MS
        }));
        if rng.chance(0.06) {
            item.stock = Some(0);
            item.in_stock = false;
        } else {
            item.stock = Some(1 + rng.below(200) as i64);
        }
        c.by_leaf[leaf].push(k);
        c.leaf_of.push(leaf);
        c.tier_of.push(*tier);
        c.brand_of.push(b);
        c.popularity.push((1.1 * rng.normal()).exp());
        c.items.push(item);
    }
    c
}

fn user_profile(k: usize, a: Archetype, rng: &mut Rng, start: i64) -> (User, bool, usize) {
    let mut u = User::new(&format!("U{:05}", k + 1));
    let (age_mean, age_sd, female_p, urban_p, devices): (f64, f64, f64, f64, [f64; 3]) = match a {
        Archetype::TrendConscious => (25.0, 5.0, 0.65, 0.75, [0.8, 0.12, 0.08]),
        Archetype::PriceSensitive => (40.0, 11.0, 0.55, 0.30, [0.45, 0.45, 0.10]),
        Archetype::LuxurySeeker => (47.0, 9.0, 0.55, 0.70, [0.25, 0.50, 0.25]),
        Archetype::OccasionalBrowser => (38.0, 14.0, 0.5, 0.45, [0.6, 0.3, 0.1]),
        Archetype::LoyalRegular => (42.0, 9.0, 0.6, 0.35, [0.35, 0.5, 0.15]),
    };
    let age = (age_mean + age_sd * rng.normal()).clamp(16.0, 85.0).round() as u16;
    u.age = Some(age);
    let female = rng.chance(female_p);
    u.gender = Some(if female { "F" } else { "M" }.into());
    u.country = Some("United Kingdom".into());
    let region = rng
        .weighted(&REGIONS.map(|r| r.2 * if urban_p > 0.5 { 1.0 + f64::from(u8::from(r.0 == "London")) } else { 1.0 }));
    u.region = Some(REGIONS[region].0.into());
    u.city = Some(REGIONS[region].1[rng.below(3)].into());
    let urb = if rng.chance(urban_p) {
        Urbanicity::Urban
    } else if rng.chance(0.6) {
        Urbanicity::Suburban
    } else {
        Urbanicity::Rural
    };
    u.urbanicity = Some(urb);
    let device = rng.weighted(&devices);
    u.preferred_device = Some(DEVICES[device].into());
    u.signup_at = Some(Timestamp(start - (rng.f64() * 700.0 * DAY_MS as f64) as i64));
    u.consent_email = rng.chance(0.6);
    u.consent_push = device == 0 && rng.chance(0.5);
    (u, female, device)
}

/// Generates the shop described by `p`.
pub fn generate(p: &DemoParams) -> DemoShop {
    let mut rng = Rng::new(p.seed);
    let cat = catalog(p, &mut rng);
    let start = p.end.0 - i64::from(p.days) * DAY_MS;
    let sale_start = p.end.0 - 7 * DAY_MS;
    let shares: Vec<f64> = Archetype::ALL.iter().map(|a| a.behaviour().share).collect();
    let mut users = Vec::with_capacity(p.users);
    let mut archetypes = Vec::with_capacity(p.users);
    let mut events: Vec<Event> = Vec::new();
    let mut weights = Vec::new();
    for k in 0..p.users {
        let mut r = Rng::fork(p.seed, k as u64 + 1);
        let a = Archetype::ALL[r.weighted(&shares)];
        let b = a.behaviour();
        let (user, female, device) = user_profile(k, a, &mut r, start);
        let tops = top_affinity(a, female);
        // Personal taste: a random tilt per top category and two favourite brands.
        let tilt: Vec<f64> = tops.iter().map(|w| w * (0.6 * r.normal()).exp()).collect();
        let fav_brands: Vec<usize> = (0..2)
            .map(|_| {
                let t = r.weighted(&tilt);
                cat.brands_by_top[t][r.below(8)]
            })
            .collect();
        let activity = (0.5 * r.normal()).exp();
        let uid = user.id.0.clone();
        let region = user.region.clone();
        let city = user.city.clone();
        let mut n_sessions = 0usize;
        let mut n_orders = 0usize;
        for day in 0..p.days {
            let day_start = start + i64::from(day) * DAY_MS;
            let weekday = Timestamp(day_start).weekday();
            let mut rate = b.sessions_per_day * activity * if weekday >= 5 { 1.35 } else { 1.0 };
            rate *= 1.0 + 0.15 * (f64::from(day) / f64::from(p.days.max(1)));
            if day_start >= sale_start && a == Archetype::PriceSensitive {
                rate *= 2.0;
            }
            for _ in 0..r.poisson(rate) {
                n_sessions += 1;
                let block = r.weighted(&b.hours);
                let mut t = day_start + ((block as f64 * 4.0 + r.f64() * 4.0) * 3_600_000.0) as i64;
                let dev = if r.chance(0.8) { device } else { r.below(3) };
                let evening = block >= 4;
                let session = format!("S{}-{}", &uid[1..], n_sessions);
                let channel = if dev == 0 && r.chance(0.4) { "app" } else { "web" };
                let ctx = tailor_core::Context {
                    device: Some(DEVICES[dev].into()),
                    country: Some("United Kingdom".into()),
                    region: region.clone(),
                    city: city.clone(),
                    channel: Some(channel.into()),
                    page: Some("product".into()),
                    ..Default::default()
                };
                let top_w: Vec<f64> =
                    tilt.iter().enumerate().map(|(ti, w)| w * context_boost(ti, dev, evening)).collect();
                let top = r.weighted(&top_w);
                let leaves: Vec<usize> = (0..CATEGORIES.len()).filter(|&l| CATEGORIES[l].0 == TOPS[top]).collect();
                let leaf = leaves[r.below(leaves.len())];
                let ev = |kind: EventKind, item: Option<usize>, t: i64| {
                    let mut e = Event::new(Some(&uid), item.map(|i| cat.items[i].id.0.as_str()), kind, Timestamp(t));
                    e.session = Some(session.clone());
                    e.context = ctx.clone();
                    e
                };
                if r.chance(0.25) {
                    let mut e = ev(EventKind::Search, None, t);
                    e.query = Some(CATEGORIES[leaf].2.to_lowercase());
                    e.context.page = Some("search".into());
                    events.push(e);
                    t += 5_000 + r.below(20_000) as i64;
                }
                let n_views = 1 + r.poisson(b.views - 1.0) as usize;
                let mut cart: Vec<(usize, u32)> = Vec::new();
                let sale_now = t >= sale_start;
                for _ in 0..n_views {
                    // A few views wander off to another leaf of the same top category.
                    let l = if r.chance(0.2) { leaves[r.below(leaves.len())] } else { leaf };
                    let cands = &cat.by_leaf[l];
                    if cands.is_empty() {
                        continue;
                    }
                    weights.clear();
                    for &j in cands {
                        let it = &cat.items[j];
                        let created = it.created_at.map_or(0, |c| c.0);
                        if created > t {
                            weights.push(0.0);
                            continue;
                        }
                        let mut w = cat.popularity[j] * b.tiers[cat.tier_of[j]];
                        if it.on_sale() || (sale_now && cat.tier_of[j] <= 1) {
                            w *= b.sale;
                        }
                        if t - created < 21 * DAY_MS {
                            w *= b.new;
                        }
                        if fav_brands.contains(&cat.brand_of[j]) {
                            w *= b.loyal;
                        }
                        if !it.in_stock {
                            w *= 0.3;
                        }
                        weights.push(w);
                    }
                    if weights.iter().all(|w| *w <= 0.0) {
                        continue;
                    }
                    let j = cands[r.weighted(&weights)];
                    events.push(ev(EventKind::View, Some(j), t));
                    t += 10_000 + (r.exp(60_000.0)) as i64;
                    if cat.items[j].in_stock && r.chance(b.cart) {
                        let q = if r.chance(0.1) { 2 } else { 1 };
                        let mut e = ev(EventKind::AddToCart, Some(j), t);
                        e.quantity = q;
                        e.context.page = Some("cart".into());
                        events.push(e);
                        cart.push((j, q));
                        t += 5_000 + r.below(30_000) as i64;
                    }
                }
                let bought: Vec<(usize, u32)> = cart.iter().copied().filter(|_| r.chance(b.buy)).collect();
                if bought.is_empty() && !cart.is_empty() && r.chance(0.3) {
                    let (j, q) = cart[0];
                    let mut e = ev(EventKind::RemoveFromCart, Some(j), t);
                    e.quantity = q;
                    e.context.page = Some("cart".into());
                    events.push(e);
                }
                if !bought.is_empty() {
                    n_orders += 1;
                    let order = format!("O{}-{}", &uid[1..], n_orders);
                    t += 60_000 + r.below(240_000) as i64;
                    for &(j, q) in &bought {
                        let mut e = ev(EventKind::Purchase, Some(j), t);
                        e.quantity = q;
                        e.unit_price = cat.items[j].effective_price();
                        e.order_id = Some(order.clone());
                        e.context.page = Some("checkout".into());
                        events.push(e);
                        if r.chance(b.ret) {
                            let back = t + (2.0 + r.f64() * 12.0) as i64 * DAY_MS;
                            if back < p.end.0 {
                                let mut e = ev(EventKind::Return, Some(j), back);
                                e.quantity = q;
                                e.unit_price = cat.items[j].effective_price();
                                e.order_id = Some(order.clone());
                                e.context.page = Some("account".into());
                                e.session = None;
                                events.push(e);
                            }
                        }
                    }
                }
            }
        }
        users.push(user);
        archetypes.push(a);
    }
    // Visitors who never log in: short sessions on popular items.
    let pop_total: Vec<f64> = cat.popularity.clone();
    for s in 0..p.anonymous_sessions {
        let mut r = Rng::fork(p.seed ^ 0xA5A5, s as u64);
        let day = r.below(p.days.max(1) as usize) as i64;
        let mut t = start + day * DAY_MS + (r.f64() * DAY_MS as f64) as i64;
        let dev = r.weighted(&[0.65, 0.3, 0.05]);
        for _ in 0..1 + r.poisson(1.5) {
            let j = r.weighted(&pop_total);
            if cat.items[j].created_at.is_some_and(|c| c.0 > t) {
                continue;
            }
            let mut e = Event::new(None, Some(&cat.items[j].id.0), EventKind::View, Timestamp(t));
            e.session = Some(format!("A{s}"));
            e.context.device = Some(DEVICES[dev].into());
            e.context.channel = Some("web".into());
            e.context.page = Some("product".into());
            events.push(e);
            t += 20_000 + r.below(90_000) as i64;
        }
    }
    events.retain(|e| e.ts.0 < p.end.0);
    events.sort_by_key(|e| e.ts);
    if p.rec_traffic {
        recommendation_traffic(&mut events, &cat.items, &cat.popularity, p.seed);
    }
    DemoShop { items: cat.items, users, events, archetypes }
}

/// Items in a demo recommendation list.
pub const REC_LIST: usize = 8;

/// Gives the history recommendation traffic, without changing what shoppers did: a quarter
/// of the registered users' sessions open with a list of [`REC_LIST`] items shown a second
/// before their first event (impression events sharing a `rec_id`). The list holds up to two
/// of the items the shopper goes on to view in that session (a fifth of them: their first
/// views were click-throughs, so they, and the carts and purchases of those items in the
/// session, carry the `rec_id`); popular items fill the rest. Impressions count for neither features nor
/// training, so segments and models are those of the shop without this traffic. Events
/// stay sorted by time.
pub fn recommendation_traffic(events: &mut Vec<Event>, items: &[Item], popularity: &[f64], seed: u64) {
    let mut r = Rng::fork(seed ^ 0x5EC5_7A11, 0);
    let index: std::collections::HashMap<&str, usize> =
        items.iter().enumerate().map(|(i, it)| (it.id.0.as_str(), i)).collect();
    // Sessions of registered users: positions of their events, in time order.
    let mut sessions: std::collections::BTreeMap<(&str, &str), Vec<usize>> = Default::default();
    for (p, e) in events.iter().enumerate() {
        if let (Some(u), Some(s)) = (&e.user, &e.session) {
            sessions.entry((u.as_str(), s.as_str())).or_default().push(p);
        }
    }
    let mut tags: Vec<(usize, String)> = Vec::new();
    let mut shown: Vec<Event> = Vec::new();
    for (n, positions) in sessions.values().enumerate() {
        if !r.chance(0.25) {
            continue;
        }
        let rec_id = format!("demo-{n:06}");
        let mut listed: Vec<usize> = Vec::new();
        for &p in positions {
            let e = &events[p];
            if e.kind == EventKind::View
                && let Some(&j) = e.item.as_ref().and_then(|i| index.get(i.as_str()))
                && !listed.contains(&j)
                && listed.len() < REC_LIST / 4
                && r.chance(0.2)
            {
                listed.push(j);
            }
        }
        let clicked = listed.clone();
        let mut tries = 0;
        while listed.len() < REC_LIST && tries < 100 {
            let j = r.weighted(popularity);
            if !listed.contains(&j) {
                listed.push(j);
            }
            tries += 1;
        }
        // The list is shown in a random order.
        for i in (1..listed.len()).rev() {
            listed.swap(i, r.below(i + 1));
        }
        let first = &events[positions[0]];
        for &j in &listed {
            let mut e = Event::new(
                first.user.as_ref().map(|u| u.as_str()),
                Some(&items[j].id.0),
                EventKind::Impression,
                Timestamp(first.ts.0 - 1000),
            );
            e.session = first.session.clone();
            e.context = first.context.clone();
            e.context.page = Some("home".into());
            e.rec_id = Some(rec_id.clone());
            shown.push(e);
        }
        // The first view of a clicked item is the click-through; its carts and purchases
        // in the session follow from it.
        let mut viewed: Vec<usize> = Vec::new();
        for &p in positions {
            let e = &events[p];
            let Some(&j) = e.item.as_ref().and_then(|i| index.get(i.as_str())) else { continue };
            if !clicked.contains(&j) {
                continue;
            }
            let first_view = e.kind == EventKind::View && !viewed.contains(&j);
            if first_view {
                viewed.push(j);
            }
            if first_view || matches!(e.kind, EventKind::AddToCart | EventKind::Purchase) {
                tags.push((p, rec_id.clone()));
            }
        }
    }
    for (p, rec_id) in tags {
        events[p].rec_id = Some(rec_id);
    }
    events.extend(shown);
    events.sort_by_key(|e| e.ts);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_shop_is_deterministic_and_valid() {
        let p = DemoParams { users: 200, items: 150, days: 20, anonymous_sessions: 50, ..DemoParams::default() };
        let a = generate(&p);
        let b = generate(&p);
        assert_eq!(a.events, b.events);
        assert_eq!(a.items.len(), 150);
        assert!(a.events.len() > 1000, "{}", a.events.len());
        for e in &a.events {
            e.validate().expect("valid event");
        }
        for i in &a.items {
            i.validate().expect("valid item");
        }
        assert!(a.events.windows(2).all(|w| w[0].ts <= w[1].ts));
        let other = generate(&DemoParams { seed: 7, ..p });
        assert_ne!(a.events, other.events);
    }

    #[test]
    fn archetypes_drive_behaviour() {
        let p = DemoParams { users: 1500, items: 600, days: 30, anonymous_sessions: 0, ..DemoParams::default() };
        let shop = generate(&p);
        let idx: std::collections::HashMap<&str, usize> =
            shop.users.iter().enumerate().map(|(k, u)| (u.id.0.as_str(), k)).collect();
        let prices: std::collections::HashMap<&str, f64> =
            shop.items.iter().map(|i| (i.id.0.as_str(), i.effective_price().unwrap_or(0.0))).collect();
        let mut spend = [(0.0f64, 0u64); 5];
        let mut views = [0u64; 5];
        for e in &shop.events {
            let Some(u) = &e.user else { continue };
            let a = shop.archetypes[idx[u.0.as_str()]] as usize;
            match e.kind {
                EventKind::Purchase => {
                    let item = e.item.as_ref().map_or("", |i| i.0.as_str());
                    spend[a].0 += prices[item];
                    spend[a].1 += 1;
                }
                EventKind::View => views[a] += 1,
                _ => {}
            }
        }
        let mean = |a: Archetype| spend[a as usize].0 / spend[a as usize].1.max(1) as f64;
        assert!(mean(Archetype::LuxurySeeker) > 2.0 * mean(Archetype::PriceSensitive), "{spend:?}");
        let per_user =
            |a: Archetype| views[a as usize] as f64 / shop.archetypes.iter().filter(|x| **x == a).count() as f64;
        assert!(per_user(Archetype::LoyalRegular) > 3.0 * per_user(Archetype::OccasionalBrowser));
    }

    #[test]
    fn recommendation_traffic_adds_lists_without_changing_behaviour() {
        let p = DemoParams { users: 300, items: 200, days: 20, anonymous_sessions: 20, ..DemoParams::default() };
        let with = generate(&p);
        let without = generate(&DemoParams { rec_traffic: false, ..p.clone() });
        // Apart from impressions and rec_ids, the same events in the same order.
        let plain = |e: &Event| {
            let mut e = e.clone();
            e.rec_id = None;
            e
        };
        let behaviour: Vec<Event> = with.events.iter().filter(|e| e.kind != EventKind::Impression).map(plain).collect();
        assert_eq!(behaviour, without.events);
        assert!(with.events.windows(2).all(|w| w[0].ts <= w[1].ts));
        // Every list has REC_LIST impressions; every attributed event follows an impression
        // of its item with the same rec_id, in the same session.
        let mut lists: std::collections::HashMap<&str, Vec<&Event>> = Default::default();
        for e in with.events.iter().filter(|e| e.kind == EventKind::Impression) {
            lists.entry(e.rec_id.as_deref().unwrap_or("")).or_default().push(e);
        }
        assert!(!lists.contains_key(""), "an impression without a rec_id");
        assert!(lists.len() > 50, "{} lists", lists.len());
        assert!(lists.values().all(|l| l.len() == REC_LIST));
        let mut clicks = 0;
        for e in with.events.iter().filter(|e| e.kind != EventKind::Impression) {
            let Some(r) = &e.rec_id else { continue };
            let list = &lists[r.as_str()];
            assert!(list.iter().any(|i| i.item == e.item && i.ts < e.ts && i.session == e.session), "{e:?}");
            clicks += usize::from(e.kind == EventKind::View);
        }
        let ctr = clicks as f64 / (lists.len() * REC_LIST) as f64;
        assert!((0.02..0.3).contains(&ctr), "click-through rate {ctr}");
        assert_eq!(generate(&p).events, with.events);
    }
}
