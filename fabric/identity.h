// Node identity: one Ed25519 key pair per node, kept in one key file. The
// node's Curve25519 key pair for CurveZMQ is derived from it, so a node has a
// single secret to guard and a single public key to put in trust stores.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace medic::fabric {

using PublicKey = std::array<uint8_t, 32>;   // Ed25519
using SecretKey = std::array<uint8_t, 64>;   // Ed25519 (seed || public)
using CurveKey = std::array<uint8_t, 32>;    // Curve25519, public or secret

// Calls sodium_init() once; safe from any thread. Returns false if libsodium
// cannot initialise (then nothing in fabric works).
bool crypto_ready();

std::string to_hex(const uint8_t* data, size_t n);
template <size_t N>
std::string to_hex(const std::array<uint8_t, N>& a) { return to_hex(a.data(), N); }
Result<PublicKey> public_key_from_hex(std::string_view hex);
// A random (version 4) uuid, 8-4-4-4-12 lower-case hex: a new VM's id.
std::string random_uuid();

// The id a key is known by: its 64-hex-digit public key.
inline std::string key_id(const PublicKey& pk) { return to_hex(pk); }
// The first 16 hex digits, for log lines.
inline std::string short_key_id(const PublicKey& pk) { return to_hex(pk.data(), 8); }

// The Curve25519 public key CurveZMQ uses for an Ed25519 public key; fails for
// a key that is not a valid curve point.
Result<CurveKey> curve_public_key(const PublicKey& pk);

class Identity {
 public:
  // A fresh random key pair.
  static Identity generate();
  // Deterministic key pair from a 32-byte seed (tests and the demo).
  static Identity from_seed(const std::array<uint8_t, 32>& seed);

  // Reads a key file written by save(). Refuses a file readable or writable
  // by group or others, a malformed file, and a secret that does not match
  // its public key.
  static Result<Identity> load(const std::string& path);
  // Writes the key file with mode 0600. Refuses to overwrite an existing file.
  Status save(const std::string& path) const;

  const PublicKey& public_key() const { return pk_; }
  std::string id() const { return key_id(pk_); }

  // Ed25519 detached signature over `msg`.
  std::array<uint8_t, 64> sign(const uint8_t* msg, size_t n) const;

  // The CurveZMQ key pair derived from this identity.
  const CurveKey& curve_public() const { return curve_pk_; }
  const CurveKey& curve_secret() const { return curve_sk_; }

 private:
  Identity() = default;
  void derive_curve();

  PublicKey pk_{};
  SecretKey sk_{};
  CurveKey curve_pk_{};
  CurveKey curve_sk_{};
};

bool verify_signature(const PublicKey& pk, const uint8_t* msg, size_t n, const uint8_t* sig64);

}  // namespace medic::fabric
