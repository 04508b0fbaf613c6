#include "fabric/identity.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <vector>

namespace medic::fabric {
namespace {

constexpr char kHeader[] = "# medic node key: keep this file secret (mode 0600)";

Result<std::vector<uint8_t>> from_hex(std::string_view hex, size_t want) {
  if (hex.size() != want * 2) {
    return invalid_argument("expected " + std::to_string(want * 2) + " hex digits, got " +
                            std::to_string(hex.size()));
  }
  std::vector<uint8_t> out(want);
  size_t bin_len = 0;
  if (sodium_hex2bin(out.data(), want, hex.data(), hex.size(), nullptr, &bin_len, nullptr) != 0 ||
      bin_len != want) {
    return invalid_argument("not a hex string");
  }
  return out;
}

}  // namespace

bool crypto_ready() {
  static const bool ok = sodium_init() >= 0;
  return ok;
}

std::string to_hex(const uint8_t* data, size_t n) {
  std::string out(n * 2 + 1, '\0');
  sodium_bin2hex(out.data(), out.size(), data, n);
  out.pop_back();
  return out;
}

std::string random_uuid() {
  crypto_ready();
  std::array<uint8_t, 16> b;
  randombytes_buf(b.data(), b.size());
  b[6] = static_cast<uint8_t>((b[6] & 0x0f) | 0x40);  // version 4
  b[8] = static_cast<uint8_t>((b[8] & 0x3f) | 0x80);  // RFC 4122 variant
  const std::string h = to_hex(b);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

Result<PublicKey> public_key_from_hex(std::string_view hex) {
  auto bytes = from_hex(hex, 32);
  if (!bytes.ok()) return bytes.status().with_context("public key");
  PublicKey pk;
  std::copy(bytes->begin(), bytes->end(), pk.begin());
  return pk;
}

Result<CurveKey> curve_public_key(const PublicKey& pk) {
  CurveKey c;
  if (crypto_sign_ed25519_pk_to_curve25519(c.data(), pk.data()) != 0) {
    return invalid_argument("public key " + short_key_id(pk) + " is not a valid Ed25519 point");
  }
  return c;
}

void Identity::derive_curve() {
  // A key pair made by libsodium always maps to a valid curve point; a loaded
  // one was checked against its secret, so failure here means memory damage.
  if (crypto_sign_ed25519_pk_to_curve25519(curve_pk_.data(), pk_.data()) != 0 ||
      crypto_sign_ed25519_sk_to_curve25519(curve_sk_.data(), sk_.data()) != 0) {
    std::abort();
  }
}

Identity Identity::generate() {
  crypto_ready();
  Identity id;
  crypto_sign_keypair(id.pk_.data(), id.sk_.data());
  id.derive_curve();
  return id;
}

Identity Identity::from_seed(const std::array<uint8_t, 32>& seed) {
  crypto_ready();
  Identity id;
  crypto_sign_seed_keypair(id.pk_.data(), id.sk_.data(), seed.data());
  id.derive_curve();
  return id;
}

Result<Identity> Identity::load(const std::string& path) {
  crypto_ready();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return not_found(path + ": key file does not exist");
  if (!S_ISREG(st.st_mode)) return invalid_argument(path + ": key file is not a regular file");
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return permission_denied(path + ": key file mode " + mode +
                             " lets others read or change it; expected 0600 (chmod 600 " + path +
                             ")");
  }
  std::ifstream in(path);
  if (!in) return io_error(path + ": cannot read key file");
  std::string line, pub_hex, sec_hex;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line[0] == '#') continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) {
      return invalid_argument(path + ":" + std::to_string(lineno) +
                              ": expected \"public: <hex>\" or \"secret: <hex>\"");
    }
    std::string key = line.substr(0, colon);
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    if (key == "public") {
      pub_hex = value;
    } else if (key == "secret") {
      sec_hex = value;
    } else {
      return invalid_argument(path + ":" + std::to_string(lineno) + ": unknown key \"" + key +
                              "\" (expected public or secret)");
    }
  }
  if (pub_hex.empty() || sec_hex.empty()) {
    return invalid_argument(path + ": key file needs both \"public:\" and \"secret:\" lines");
  }
  auto pub = from_hex(pub_hex, 32);
  if (!pub.ok()) return pub.status().with_context(path + ": public");
  auto sec = from_hex(sec_hex, 64);
  if (!sec.ok()) return sec.status().with_context(path + ": secret");
  Identity id;
  std::copy(pub->begin(), pub->end(), id.pk_.begin());
  std::copy(sec->begin(), sec->end(), id.sk_.begin());
  PublicKey derived;
  crypto_sign_ed25519_sk_to_pk(derived.data(), id.sk_.data());
  if (derived != id.pk_) {
    return invalid_argument(path + ": secret key does not belong to the public key in the file");
  }
  sodium_memzero(sec->data(), sec->size());
  id.derive_curve();
  return id;
}

Status Identity::save(const std::string& path) const {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return already_exists(path + ": refusing to overwrite an existing file");
    return io_error(path + ": cannot create key file: " + std::strerror(errno));
  }
  std::string text = std::string(kHeader) + "\npublic: " + to_hex(pk_) + "\nsecret: " +
                     to_hex(sk_) + "\n";
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ::fsync(fd) == 0 && ok;
  ok = ::close(fd) == 0 && ok;
  sodium_memzero(text.data(), text.size());
  if (!ok) return io_error(path + ": writing key file failed");
  return {};
}

std::array<uint8_t, 64> Identity::sign(const uint8_t* msg, size_t n) const {
  std::array<uint8_t, 64> sig;
  crypto_sign_detached(sig.data(), nullptr, msg, n, sk_.data());
  return sig;
}

bool verify_signature(const PublicKey& pk, const uint8_t* msg, size_t n, const uint8_t* sig64) {
  return crypto_sign_verify_detached(sig64, msg, n, pk.data()) == 0;
}

}  // namespace medic::fabric
