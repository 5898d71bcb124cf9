//! A torchsummary-like table of a model.

/// One row of a model summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerRow {
    /// The layer's name, as in the saved tensors.
    pub name: String,
    /// Its output shape for a batch of one.
    pub output_shape: Vec<usize>,
    /// Trainable parameters it holds.
    pub params: usize,
}

/// A torchsummary-like table of a model: layers, output shapes, parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// The model's title.
    pub title: String,
    /// Its layers in order.
    pub rows: Vec<LayerRow>,
}

impl Summary {
    /// Trainable parameters in all.
    pub fn total_params(&self) -> usize {
        self.rows.iter().map(|r| r.params).sum()
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = "-".repeat(64);
        writeln!(f, "{}\n{line}", self.title)?;
        writeln!(f, "{:<28}{:<24}{:>12}", "Layer", "Output shape", "Param #")?;
        writeln!(f, "{line}")?;
        for row in &self.rows {
            let shape = format!("{:?}", row.output_shape);
            writeln!(
                f,
                "{:<28}{:<24}{:>12}",
                row.name,
                shape,
                thousands(row.params)
            )?;
        }
        writeln!(f, "{line}")?;
        write!(f, "Trainable params: {}", thousands(self.total_params()))
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
