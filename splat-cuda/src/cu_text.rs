//! Reading facts out of the kernels' CUDA C text, for the tests that hold the kernels to
//! splat-core's constants and the host's launch arguments to the kernels' prototypes.

/// The body of `#define NAME BODY` in `src` (without a trailing `//` comment).
pub(crate) fn define<'s>(src: &'s str, name: &str) -> Option<&'s str> {
    src.lines().find_map(|l| {
        let rest = l.trim_start().strip_prefix("#define")?;
        let rest = rest.trim_start().strip_prefix(name)?;
        if !rest.starts_with([' ', '\t']) {
            return None;
        }
        Some(rest.split("//").next().unwrap_or("").trim())
    })
}

/// Evaluates a `#define` of `src` in double precision: numbers (with `f`/`u` suffixes), other
/// defines, `(float)`/`(double)` casts (ignored: callers compare after their own rounding),
/// parentheses, `+ - * /` and `<<`.
pub(crate) fn eval_define(src: &str, name: &str) -> f64 {
    let body = define(src, name).unwrap_or_else(|| panic!("no #define {name}"));
    eval(src, body)
}

/// Evaluates a constant expression of `src` (see [`eval_define`]).
pub(crate) fn eval(src: &str, expr: &str) -> f64 {
    let cleaned = expr.replace("(float)", " ").replace("(double)", " ");
    let toks = tokens(&cleaned);
    let mut p = Parser {
        src,
        toks: &toks,
        at: 0,
    };
    let v = p.shift();
    assert_eq!(p.at, toks.len(), "trailing tokens in `{expr}`");
    v
}

fn tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '<' && cs.get(i + 1) == Some(&'<') {
            out.push("<<".into());
            i += 2;
        } else if "()+-*/".contains(c) {
            out.push(c.to_string());
            i += 1;
        } else {
            let start = i;
            while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_' || cs[i] == '.') {
                // An exponent's sign belongs to the number (1e-4).
                i += 1;
                if i < cs.len()
                    && (cs[i] == '-' || cs[i] == '+')
                    && matches!(cs[i - 1], 'e' | 'E')
                    && cs[start].is_ascii_digit()
                {
                    i += 1;
                }
            }
            assert!(i > start, "unexpected character {c:?} in `{s}`");
            out.push(cs[start..i].iter().collect());
        }
    }
    out
}

struct Parser<'a> {
    src: &'a str,
    toks: &'a [String],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&str> {
        self.toks.get(self.at).map(|s| s.as_str())
    }

    fn shift(&mut self) -> f64 {
        let mut v = self.sum();
        while self.peek() == Some("<<") {
            self.at += 1;
            v = ((v as i64) << (self.sum() as i64)) as f64;
        }
        v
    }

    fn sum(&mut self) -> f64 {
        let mut v = self.product();
        while let Some(op @ ("+" | "-")) = self.peek() {
            let plus = op == "+";
            self.at += 1;
            let r = self.product();
            v = if plus { v + r } else { v - r };
        }
        v
    }

    fn product(&mut self) -> f64 {
        let mut v = self.unary();
        while let Some(op @ ("*" | "/")) = self.peek() {
            let times = op == "*";
            self.at += 1;
            let r = self.unary();
            v = if times { v * r } else { v / r };
        }
        v
    }

    fn unary(&mut self) -> f64 {
        match self.peek() {
            Some("-") => {
                self.at += 1;
                -self.unary()
            }
            Some("(") => {
                self.at += 1;
                let v = self.shift();
                assert_eq!(self.peek(), Some(")"), "unbalanced parentheses");
                self.at += 1;
                v
            }
            Some(t) => {
                let t = t.to_string();
                self.at += 1;
                if t.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
                    number(&t)
                } else {
                    eval_define(self.src, &t)
                }
            }
            None => panic!("expression ends early"),
        }
    }
}

/// A C literal: `16`, `32u`, `3.0f`, `1e-4`, `0.3`.
pub(crate) fn number(t: &str) -> f64 {
    let t = t.trim_end_matches(['f', 'F', 'u', 'U']);
    t.parse().unwrap_or_else(|_| panic!("not a number: {t:?}"))
}

/// The numbers of an initialiser `NAME[..] = {a, b, ...}` or `NAME = a;` in `src`, each
/// evaluated as an expression (casts ignored).
pub(crate) fn initialiser(src: &str, name: &str) -> Vec<f64> {
    let at = src
        .find(&format!("{name}["))
        .or_else(|| src.find(&format!("{name} =")))
        .unwrap_or_else(|| panic!("no initialiser for {name}"));
    let rest = &src[at..];
    let eq = rest.find('=').expect("=");
    let rest = rest[eq + 1..].trim_start();
    let body = if let Some(r) = rest.strip_prefix('{') {
        &r[..r.find('}').expect("}")]
    } else {
        &rest[..rest.find([';', ',']).expect(";")]
    };
    body.split(',').map(|e| eval(src, e.trim())).collect()
}

/// One kernel parameter: its C type (qualifiers and `__restrict__` dropped, `*` kept) and name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Param {
    /// "int", "unsigned int", "float", "const float*", "float4*", "Cam", ...
    pub ty: String,
    /// The parameter's name.
    pub name: String,
}

/// The parameters of `extern "C" __global__ ... NAME(...)` in `src`.
pub(crate) fn kernel_params(src: &str, name: &str) -> Vec<Param> {
    let mut search = 0;
    let open = loop {
        let at = src[search..]
            .find(&format!("{name}("))
            .map(|i| i + search)
            .unwrap_or_else(|| panic!("no kernel {name}"));
        let before = &src[..at];
        let boundary = before
            .chars()
            .last()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        // The definition: preceded (within its statement) by __global__.
        let stmt_start = before.rfind([';', '}']).map_or(0, |i| i + 1);
        if boundary && before[stmt_start..].contains("__global__") {
            break at + name.len();
        }
        search = at + name.len();
    };
    let close = open + src[open..].find(')').expect(")");
    let list = &src[open + 1..close];
    list.split(',')
        .map(|p| {
            let p = p.replace("__restrict__", " ").replace('*', " * ");
            let words: Vec<&str> = p.split_whitespace().collect();
            let (name, ty) = words.split_last().expect("a parameter");
            let ty = ty.join(" ").replace(" *", "*");
            Param {
                ty,
                name: name.to_string(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_defines_expressions_and_prototypes() {
        let src = "#define A 16\n#define B (A * A) // area\n#define C ((float)(1.0 / 4.0))\n\
                   #define D (1 << A)\n#define E 1e-4f\n\
                   __constant__ float K[2] = {(float)0.5, (float)-2};\n\
                   extern \"C\" __global__ void __launch_bounds__(256)\n\
                   kern(int n, const float* __restrict__ x, float4* y, Cam cam) {}\n";
        assert_eq!(eval_define(src, "A"), 16.0);
        assert_eq!(eval_define(src, "B"), 256.0);
        assert_eq!(eval_define(src, "C"), 0.25);
        assert_eq!(eval_define(src, "D"), 65536.0);
        assert_eq!(eval_define(src, "E"), 1e-4);
        assert_eq!(initialiser(src, "K"), vec![0.5, -2.0]);
        let p = kernel_params(src, "kern");
        let got: Vec<(&str, &str)> = p.iter().map(|p| (p.ty.as_str(), p.name.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("int", "n"),
                ("const float*", "x"),
                ("float4*", "y"),
                ("Cam", "cam")
            ]
        );
    }
}
