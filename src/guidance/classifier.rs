//! Classifier guidance (Dhariwal & Nichol, 2021; Song et al., 2021).

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};

use super::cfg::check_weight;
use super::{Condition, NoisyClassifier};
use crate::error::{Error, Result};
use crate::score::Score;

/// The score of the tilted conditional p_t(x | y) ∝ p_t(x) p_t(y | x)^γ:
///
/// ```text
///   s(x, t | y) = s(x, t) + γ ∇_x ln p_t(y | x)
/// ```
///
/// γ = 1 with the exact classifier is Bayes' rule: the exact conditional
/// score. One call costs the score's evaluations plus the classifier's
/// ([`Score::evals`]).
pub struct ClassifierGuidance<'a> {
    score: &'a dyn Score,
    classifier: &'a dyn NoisyClassifier,
    class: usize,
    gamma: f32,
}

impl<'a> ClassifierGuidance<'a> {
    /// Guide `score` towards `class` of `classifier` with scale `gamma` ≥ 0.
    pub fn new(
        score: &'a dyn Score,
        classifier: &'a dyn NoisyClassifier,
        class: usize,
        gamma: f64,
    ) -> Result<Self> {
        check_weight("classifier-scale", gamma)?;
        Condition::class(class, classifier.label_count())?;
        if classifier.input_dim() != score.dim() {
            return Err(Error::invalid(
                "classifier",
                format!("input dimension {}", classifier.input_dim()),
                format!("the score's dimension {}", score.dim()),
            ));
        }
        Ok(ClassifierGuidance {
            score,
            classifier,
            class,
            gamma: gamma as f32,
        })
    }
}

impl Score for ClassifierGuidance<'_> {
    fn dim(&self) -> usize {
        self.score.dim()
    }

    fn score(&self, x: ArrayView2<f32>, t: f64, mut out: ArrayViewMut2<f32>) {
        self.score.score(x, t, out.view_mut());
        let mut g = Array2::<f32>::zeros(x.raw_dim());
        self.classifier
            .log_prob_grad(x, t, self.class, g.view_mut());
        let gamma = self.gamma;
        Zip::from(&mut out)
            .and(&g)
            .for_each(|o, &gv| *o += gamma * gv);
    }

    fn evals(&self, t: f64) -> usize {
        self.score.evals(t) + self.classifier.evals(t)
    }

    fn describe(&self) -> String {
        format!(
            "{} with classifier guidance towards class {} (scale {})",
            self.score.describe(),
            self.class,
            self.gamma
        )
    }
}
