//! airlock-synth
