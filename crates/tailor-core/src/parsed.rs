//! Settings written as text and parsed once, at the edge.

use std::fmt;
use std::str::FromStr;

/// A configuration value written as text (`"purchase, add_to_cart:1d"`, `"30m"`) and parsed
/// into `T` when the configuration is read, so a bad value is refused with its key before
/// anything starts and code reads the typed value (`*parsed` or `parsed.value()`). The text
/// is kept: `tailor config` shows it and serialisation writes it back unchanged. Two values
/// are equal when their texts are.
#[derive(Clone)]
pub struct Parsed<T> {
    text: String,
    value: T,
}

impl<T: FromStr> Parsed<T>
where
    T::Err: fmt::Display,
{
    /// Parses `text`; the error says why it is refused.
    pub fn new(text: impl Into<String>) -> Result<Self, String> {
        let text = text.into();
        match text.parse::<T>() {
            Ok(value) => Ok(Self { text, value }),
            Err(e) => Err(format!("{text:?}: {e}")),
        }
    }
}

impl<T> Parsed<T> {
    /// The text as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The parsed value.
    pub fn value(&self) -> &T {
        &self.value
    }
}

impl<T> std::ops::Deref for Parsed<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> fmt::Debug for Parsed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl<T> PartialEq for Parsed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl<T: FromStr> FromStr for Parsed<T>
where
    T::Err: fmt::Display,
{
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::new(s)
    }
}

impl<T> serde::Serialize for Parsed<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de, T: FromStr> serde::Deserialize<'de> for Parsed<T>
where
    T::Err: fmt::Display,
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::new(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq)]
    struct Even(u32);

    impl FromStr for Even {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, String> {
            let n: u32 = s.trim().parse().map_err(|_| "expected a number".to_string())?;
            if n.is_multiple_of(2) { Ok(Even(n)) } else { Err(format!("{n} is odd")) }
        }
    }

    #[test]
    fn parses_once_and_keeps_the_text() {
        let p: Parsed<Even> = serde_json::from_str("\" 4\"").expect("even");
        assert_eq!((*p, p.text()), (Even(4), " 4"));
        assert_eq!(serde_json::to_string(&p).expect("json"), "\" 4\"");
        let e = serde_json::from_str::<Parsed<Even>>("\"3\"").expect_err("odd");
        assert!(e.to_string().starts_with("\"3\": 3 is odd"), "{e}");
        assert_eq!("x".parse::<Parsed<Even>>().err().as_deref(), Some("\"x\": expected a number"));
        assert_eq!(Parsed::<Even>::new("4"), Parsed::new("4"));
    }
}
