//! Bit reader for RBSP (emulation prevention removed) with Exp-Golomb codes (ITU-T H.264 §9.1).
