//! Training targets and recipes: each target's minimiser is the exact
//! score of Gaussian data; the ODE samplers on the linear (flow-matching)
//! path driven by the exact velocity reproduce the Gaussian; every recipe
//! resumes bit for bit and is independent of the thread count.

use ndarray::{Array2, ArrayView2, ArrayViewMut2};
use rand::RngExt;
use scoresde::convert::{Coeffs, Output, Quantity};
use scoresde::data::{Toy, TrainData};
use scoresde::nn::{MlpConfig, UNetConfig};
use scoresde::samplers::{by_name, sample, SampleOptions};
use scoresde::score::Score;
use scoresde::sde::{LinearSde, Sde, SdeConfig, VpSde};
use scoresde::train::{Objective, Recipe, TrainOptions, Trainer, EMA_WARMUP};

const MU: [f64; 2] = [1.0, -2.0];
const S: f64 = 0.5;

/// The exact probability-flow velocity of N(mu, S² I) data on the linear
/// path, u = α' x̂0 + σ' ε̂ with x̂0 = mu + α S² (x − α mu)/(α² S² + σ²), as a
/// score through [`Coeffs::convert`] (velocity → score).
struct GaussianVelocity(LinearSde);

impl Score for GaussianVelocity {
    fn dim(&self) -> usize {
        2
    }
    fn score(&self, x: ArrayView2<f32>, t: f64, mut out: ArrayViewMut2<f32>) {
        let c = Coeffs::at(&self.0, t);
        let var = c.alpha * c.alpha * S * S + c.sigma * c.sigma;
        for (xr, mut or) in x.outer_iter().zip(out.outer_iter_mut()) {
            for (j, (o, &xv)) in or.iter_mut().zip(xr.iter()).enumerate() {
                let x = xv as f64;
                let x0 = MU[j] + c.alpha * S * S * (x - c.alpha * MU[j]) / var;
                let eps = (x - c.alpha * x0) / c.sigma;
                let u = -x0 + eps; // α' = −1, σ' = 1
                *o = c.convert(Quantity::Velocity, Quantity::Score, x, u) as f32;
            }
        }
    }
}

/// Mean and std of every coordinate within 4 SE of the marginal at t = ε
/// (SE(mean) = std/√n, SE(std) = std/√(2n)); the prior N(0, T² I) leaves
/// out α(T) mu = 2e-3, a quarter SE.
#[test]
fn ode_samplers_on_the_linear_path_reproduce_the_gaussian() {
    let sde = LinearSde::default();
    let score = GaussianVelocity(sde);
    let n = 4000;
    for spec in [
        "ode-heun",
        "ode-rk4",
        "ode-rk45",
        "ddim",
        "dpm-solver++",
        "em",
        "deis",
    ] {
        let steps = if spec == "em" { 500 } else { 50 };
        let sampler = by_name(spec, steps).unwrap();
        let out = sample(sampler.as_ref(), &sde, &score, &SampleOptions::new(n, 3)).unwrap();
        let t = sde.t_eps();
        let a = sde.alpha(t);
        let std_true = (a * a * S * S + sde.sigma(t).powi(2)).sqrt();
        for (j, mu) in MU.iter().enumerate() {
            let col: Vec<f64> = out.samples.column(j).iter().map(|&v| v as f64).collect();
            let mean = col.iter().sum::<f64>() / n as f64;
            let sd =
                (col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n as f64 - 1.0)).sqrt();
            let (se_m, se_s) = (
                std_true / (n as f64).sqrt(),
                std_true / (2.0 * n as f64).sqrt(),
            );
            assert!(
                (mean - a * mu).abs() < 4.0 * se_m,
                "{spec}: mean {mean} vs {}",
                a * mu
            );
            assert!(
                (sd - std_true).abs() < 4.0 * se_s,
                "{spec}: std {sd} vs {std_true}"
            );
        }
    }
}

/// At a fixed t every target's optimum for 1-D Gaussian data N(mu, S²) is
/// affine in x (x0 and ε are jointly Gaussian with x), so the least-squares
/// fit F = b0 + b1 x of N = 40,000 draws is the trained model of the
/// objective. Its score at x must be the exact −(x − α mu)/(α² S² + σ²)
/// within 5 SE, the SE of the fitted mean at x (from the residual variance
/// and the design) carried through the affine F → score map.
#[test]
fn every_target_s_minimiser_is_the_exact_gaussian_score() {
    let n = 40_000;
    let mut r = scoresde::rng::stream(7, scoresde::rng::domain::TRAIN, 0);
    let sdes: Vec<Box<dyn Sde>> = vec![
        Box::new(VpSde::default()),
        SdeConfig::by_name("ve").unwrap().build().unwrap(),
        Box::new(LinearSde::default()),
    ];
    for sde in &sdes {
        for &t in &[0.05, 0.3, 0.7] {
            let c = Coeffs::at(sde.as_ref(), t);
            for out in [
                Output::Eps,
                Output::X0,
                Output::V,
                Output::Velocity,
                Output::Edm { sigma_data: 0.5 },
            ] {
                let (mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0);
                let mut pts = Vec::with_capacity(n);
                for _ in 0..n {
                    let z: [f32; 2] = [0.0; 2];
                    let mut z = z;
                    scoresde::rng::fill_normal(&mut r, &mut z);
                    let _: f64 = r.random();
                    let x0 = MU[0] + S * z[0] as f64;
                    let eps = z[1] as f64;
                    let x = c.alpha * x0 + c.sigma * eps;
                    let u = x * out.input_scale(&c);
                    let y = out.target(&c, x, x0, eps);
                    pts.push((u, y, x));
                    sx += u;
                    sy += y;
                    sxx += u * u;
                    sxy += u * y;
                }
                let nf = n as f64;
                let (mx, my) = (sx / nf, sy / nf);
                let vxx = sxx / nf - mx * mx;
                let b1 = (sxy / nf - mx * my) / vxx;
                let b0 = my - b1 * mx;
                let rss: f64 = pts.iter().map(|&(u, y, _)| (y - b0 - b1 * u).powi(2)).sum();
                let s2 = rss / (nf - 2.0);
                let var_x = c.alpha * c.alpha * S * S + c.sigma * c.sigma;
                for x in [
                    c.alpha * MU[0] - var_x.sqrt(),
                    c.alpha * MU[0] + 0.5 * var_x.sqrt(),
                ] {
                    let u = x * out.input_scale(&c);
                    let f = b0 + b1 * u;
                    let se_f = (s2 * (1.0 / nf + (u - mx).powi(2) / (nf * vxx))).sqrt();
                    let h = 1e-3 * (1.0 + f.abs());
                    let ds = (out.score(&c, x, f + h) - out.score(&c, x, f - h)) / (2.0 * h);
                    let got = out.score(&c, x, f);
                    let want = -(x - c.alpha * MU[0]) / var_x;
                    assert!(
                        (got - want).abs() <= 5.0 * ds.abs() * se_f + 1e-9 * want.abs(),
                        "{:?} t={t} {out:?}: score {got} vs {want} (SE {})",
                        sde.config(),
                        ds.abs() * se_f
                    );
                }
            }
        }
    }
}

fn recipes() -> Vec<(TrainOptions, &'static str)> {
    let small = |sde: &str, target: &str, tuned: bool| {
        let mut o = TrainOptions::spec(Toy::Checkerboard);
        o.sde = SdeConfig::by_name(sde).unwrap();
        o.net = MlpConfig {
            hidden: 32,
            depth: 2,
            ..MlpConfig::new(2)
        }
        .into();
        o.batch = 16;
        o.steps = 6;
        let base = if tuned {
            Recipe {
                lr_warmup: 3,
                lr_decay: scoresde::train::LrDecay::Cosine,
                final_lr: 0.1,
                ema_warmup: Some(EMA_WARMUP),
                ..Recipe::default()
            }
        } else {
            Recipe::default()
        };
        o.recipe = Recipe {
            target: Objective::parse(target).unwrap().spec(),
            ..base
        };
        o
    };
    let mut digits = TrainOptions::spec(Toy::Checkerboard);
    digits.data = TrainData::by_name("digits", None, None).unwrap();
    digits.net = UNetConfig {
        widths: vec![8, 16],
        time_dim: 16,
        ..UNetConfig::new(1, 8, 8)
    }
    .into();
    digits.batch = 4;
    digits.steps = 6;
    digits.recipe = Recipe {
        flip: true,
        ema_warmup: Some(EMA_WARMUP),
        target: Objective::parse("v:min_snr=5").unwrap().spec(),
        ..Recipe::default()
    };
    // Class-conditional runs: labels and label dropout drawn per step.
    let mut cond = small("vp", "eps", true);
    cond.data = TrainData::Toy(Toy::EightGaussians);
    cond.net = cond.net.clone().with_classes(8);
    cond.label_dropout = 0.5;
    // The 2-D sets' tuned network: Fourier features of the input.
    let mut fourier = small("vp", "edm:sigma_data=2.3", true);
    fourier.net = MlpConfig {
        hidden: 32,
        depth: 2,
        fourier: scoresde::app::presets::tuned_mlp("checkerboard")
            .unwrap()
            .fourier,
        ..MlpConfig::new(2)
    }
    .into();
    let mut cond_digits = digits.clone();
    cond_digits.net = cond_digits.net.clone().with_classes(10);
    // The tuned recipes of the presets, as `train --data X` runs them.
    let vp = SdeConfig::by_name("vp").unwrap();
    let mut tuned_toy = small("vp", "eps", true);
    tuned_toy.recipe = scoresde::app::presets::tuned_recipe("checkerboard", &vp);
    let mut tuned_digits = digits.clone();
    tuned_digits.recipe = scoresde::app::presets::tuned_recipe("digits", &vp);
    vec![
        (tuned_toy, "tuned checkerboard preset"),
        (tuned_digits, "tuned digits preset"),
        (cond, "conditional 8gaussians"),
        (cond_digits, "conditional digits"),
        (small("vp", "eps", false), "spec"),
        (small("vp", "eps", true), "tuned eps"),
        (small("vp", "edm", true), "tuned edm"),
        (fourier, "tuned edm, Fourier features"),
        (small("vp", "v:min_snr=5", true), "tuned v min-snr"),
        (small("vp", "x0:density=lognormal", true), "x0 log-normal"),
        (small("linear", "velocity", true), "flow matching"),
        (digits, "digits flips"),
    ]
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// 3 steps, a checkpoint, a resume and 3 more give the bits of 6 straight
/// steps (weights, EMA, Adam), and the saved recipe is what resumes.
#[test]
fn every_recipe_resumes_bit_for_bit() {
    for (opts, what) in recipes() {
        let dir = std::env::temp_dir().join(format!(
            "scoresde-recipes-{}-{}",
            std::process::id(),
            what.replace(' ', "-")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let mut straight = Trainer::new(opts.clone()).unwrap();
        for _ in 0..6 {
            straight.train_step().unwrap();
        }
        let mut first = Trainer::new(opts.clone()).unwrap();
        for _ in 0..3 {
            first.train_step().unwrap();
        }
        first.save_checkpoint(&dir).unwrap();
        let ckpt = scoresde::train::checkpoint::load(&dir).unwrap();
        assert_eq!(
            ckpt.state.as_ref().unwrap().train.recipe.is_some(),
            !opts.recipe.is_spec(),
            "{what}"
        );
        let mut resumed = Trainer::resume(opts.clone(), ckpt).unwrap();
        for _ in 0..3 {
            resumed.train_step().unwrap();
        }
        assert_eq!(
            bits(straight.net.params()),
            bits(resumed.net.params()),
            "{what}: params"
        );
        assert_eq!(
            bits(&straight.ema.shadow),
            bits(&resumed.ema.shadow),
            "{what}: EMA"
        );
        assert_eq!(
            bits(&straight.adam.v),
            bits(&resumed.adam.v),
            "{what}: Adam"
        );
        // A different recipe is refused on resume, naming it.
        let mut other = opts.clone();
        other.recipe.lr_warmup += 1;
        let err = Trainer::resume(other, scoresde::train::checkpoint::load(&dir).unwrap())
            .err()
            .unwrap();
        assert!(err.to_string().contains("recipe"), "{what}: {err}");
        // The saved model converts through its recorded output.
        let model = scoresde::train::checkpoint::load(&dir).unwrap().model;
        assert_eq!(
            model.config.output,
            opts.recipe.objective().unwrap().output,
            "{what}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Every recipe gives the same bits on 1 and 3 threads.
#[test]
fn every_recipe_is_independent_of_the_thread_count() {
    for (opts, what) in recipes() {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut tr = Trainer::new(opts.clone()).unwrap();
                for _ in 0..3 {
                    tr.train_step().unwrap();
                }
                let model = tr.ema_model().unwrap();
                let x = Array2::from_shape_fn((5, model.dim()), |(i, j)| {
                    (i as f32 - 2.0) * 0.3 + j as f32 * 0.01
                });
                let mut s = Array2::zeros(x.dim());
                model.score(x.view(), 0.4, s.view_mut());
                (bits(&tr.ema.shadow), bits(s.as_slice().unwrap()))
            })
        };
        assert_eq!(run(1), run(3), "{what}");
    }
}

/// The tuned recipes are the ones docs/recipes.md measured: the 2-D sets
/// EDM with σ_data 2.3 and ln σ̃ ~ N(−2, 1.5²), digits EDM with σ_data 0.5
/// and EDM's density, both with the schedules; emoji the SPEC objective
/// with the schedules; MNIST the SPEC recipe, class-conditional.
#[test]
fn tuned_recipes_are_the_measured_ones() {
    use scoresde::app::presets::{tuned_conditional, tuned_recipe};
    let vp = SdeConfig::by_name("vp").unwrap();
    let target = |name: &str| tuned_recipe(name, &vp).objective().unwrap();
    let toy = target("checkerboard");
    assert_eq!(
        toy.output,
        Some(scoresde::convert::Output::Edm { sigma_data: 2.3 })
    );
    assert_eq!(
        toy.density,
        scoresde::train::target::Density::LogNormal {
            mean: -2.0,
            std: 1.5
        }
    );
    let digits = target("digits");
    assert_eq!(
        digits.output,
        Some(scoresde::convert::Output::Edm { sigma_data: 0.5 })
    );
    assert_eq!(digits.density, scoresde::train::target::EDM_DENSITY);
    for name in ["checkerboard", "digits", "emoji"] {
        let r = tuned_recipe(name, &vp);
        assert_eq!(r.lr_warmup, 200, "{name}");
        assert_eq!(r.ema_warmup, Some(EMA_WARMUP), "{name}");
        assert!(!r.flip, "{name}");
    }
    assert_eq!(
        target("emoji"),
        scoresde::train::target::Objective::default()
    );
    for name in ["mnist", "mnist16"] {
        assert!(tuned_recipe(name, &vp).is_spec(), "{name}");
    }
    assert!(tuned_conditional("mnist"));
    for name in ["checkerboard", "digits", "emoji", "mnist16"] {
        assert!(!tuned_conditional(name), "{name}");
    }
}

/// `train` takes the data set's tuned recipe, `--recipe spec` the SPEC's
/// bit for bit, and a resumed checkpoint its own (an old one without a
/// recipe resumes as SPEC).
#[test]
fn options_pick_the_tuned_spec_or_saved_recipe() {
    use scoresde::app::options::{resolve_train, HyperRequest, TrainRequest};
    let req = |recipe: Option<&str>| TrainRequest {
        hyper: HyperRequest {
            recipe: recipe.map(String::from),
            ..HyperRequest::default()
        },
        ..TrainRequest::default()
    };
    let vp = SdeConfig::by_name("vp").unwrap();
    let tuned = resolve_train(&req(None), None).unwrap().recipe;
    assert_eq!(
        tuned,
        scoresde::app::presets::tuned_recipe("checkerboard", &vp)
    );
    assert!(!tuned.is_spec());
    let spec = resolve_train(&req(Some("spec")), None).unwrap();
    assert!(spec.recipe.is_spec());
    // The tuned network has Fourier features, the SPEC one is SPEC's MLP.
    assert_eq!(spec.net, MlpConfig::new(2).into());
    assert_eq!(
        resolve_train(&req(None), None).unwrap().net,
        scoresde::app::presets::tuned_mlp("checkerboard")
            .unwrap()
            .into()
    );
    assert!(scoresde::app::presets::tuned_mlp("checkerboard")
        .unwrap()
        .fourier
        .is_some());
    assert!(resolve_train(&req(Some("best")), None).is_err());
    // A SPEC checkpoint (no recipe recorded, as every older one) resumes as SPEC.
    let dir = std::env::temp_dir().join(format!("scoresde-recipes-opts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut opts = TrainOptions::spec(Toy::Checkerboard);
    opts.net = MlpConfig {
        hidden: 8,
        depth: 1,
        ..MlpConfig::new(2)
    }
    .into();
    let mut tr = Trainer::new(opts).unwrap();
    tr.train_step().unwrap();
    tr.save_checkpoint(&dir).unwrap();
    let ckpt = scoresde::train::checkpoint::load(&dir).unwrap();
    assert!(ckpt.model.config.output.is_none());
    let resumed = resolve_train(&req(None), Some(&ckpt)).unwrap();
    assert!(resumed.recipe.is_spec());
    let _ = std::fs::remove_dir_all(&dir);
}
