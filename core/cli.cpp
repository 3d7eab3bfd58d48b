#include "core/cli.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "core/error.h"

namespace mu {

Cli::Cli(std::string prog, std::string summary) : prog_(std::move(prog)), summary_(std::move(summary)) {}

static std::string fmt_double(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

namespace {
// One option entry; `set` parses and stores the value.
Cli::Opt make_opt(const std::string& name, const std::string& metavar, const std::string& help, const std::string& def,
                  std::function<void(const std::string&)> set) {
  Cli::Opt o;
  o.name = name;
  o.metavar = metavar;
  o.help = help;
  o.def = def;
  o.set = std::move(set);
  return o;
}

int64_t parse_integer(const std::string& name, const std::string& s, int64_t lo, int64_t hi) {
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(s.c_str(), &end, 10);
  MU_CHECK(!s.empty() && *end == 0 && errno == 0 && x >= lo && x <= hi, "--%s expects an integer, got '%s'",
           name.c_str(), s.c_str());
  return x;
}
}  // namespace

void Cli::add_string(const std::string& name, std::string* v, const std::string& metavar, const std::string& help) {
  opts_.push_back(make_opt(name, metavar, help, *v, [v](const std::string& s) { *v = s; }));
  opts_.back().get = [v] { return *v; };
}

void Cli::add_int(const std::string& name, int* v, const std::string& help) {
  opts_.push_back(make_opt(name, "N", help, std::to_string(*v), [v, name](const std::string& s) {
    *v = static_cast<int>(parse_integer(name, s, INT32_MIN, INT32_MAX));
  }));
  opts_.back().get = [v] { return std::to_string(*v); };
}

void Cli::add_int64(const std::string& name, int64_t* v, const std::string& help) {
  opts_.push_back(make_opt(name, "N", help, std::to_string(*v), [v, name](const std::string& s) {
    *v = parse_integer(name, s, INT64_MIN, INT64_MAX);
  }));
  opts_.back().get = [v] { return std::to_string(*v); };
}

void Cli::add_float(const std::string& name, double* v, const std::string& help) {
  opts_.push_back(make_opt(name, "X", help, fmt_double(*v), [v, name](const std::string& s) {
    char* end = nullptr;
    errno = 0;
    double x = std::strtod(s.c_str(), &end);
    MU_CHECK(!s.empty() && *end == 0 && errno == 0, "--%s expects a number, got '%s'", name.c_str(), s.c_str());
    *v = x;
  }));
  opts_.back().get = [v] {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", *v);
    return std::string(buf);
  };
}

void Cli::add_flag(const std::string& name, bool* v, const std::string& help) {
  Opt o;
  o.name = name;
  o.help = help;
  o.is_flag = true;
  o.def = *v ? "on" : "off";
  o.set = [v](const std::string& s) { *v = (s == "1"); };
  o.get = [v] { return std::string(*v ? "on" : "off"); };
  opts_.push_back(o);
}

void Cli::section(const std::string& title) {
  Opt o;
  o.is_section = true;
  o.help = title;
  opts_.push_back(o);
}

Cli::Opt* Cli::find(const std::string& name) {
  for (auto& o : opts_)
    if (!o.is_section && o.name == name) return &o;
  return nullptr;
}

std::vector<std::pair<std::string, std::string>> Cli::values() const {
  std::vector<std::pair<std::string, std::string>> v;
  for (const auto& o : opts_)
    if (!o.is_section) v.emplace_back(o.name, o.get());
  return v;
}

bool Cli::given(const std::string& name) const {
  for (const auto& o : opts_)
    if (!o.is_section && o.name == name) return o.seen;
  MU_FAIL("internal: option --%s is not registered", name.c_str());
}

bool Cli::parse(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(usage().c_str(), stdout);
      return false;
    }
    MU_CHECK(arg.size() > 2 && arg.compare(0, 2, "--") == 0, "unexpected argument '%s' (options start with --; see --help)",
             arg.c_str());
    std::string name = arg.substr(2), value;
    bool has_value = false;
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    Opt* o = find(name);
    bool negated = false;
    if (!o && name.compare(0, 3, "no-") == 0) {
      o = find(name.substr(3));
      negated = o && o->is_flag;
      if (!negated) o = nullptr;
    }
    MU_CHECK(o, "unknown option --%s (see %s --help)", name.c_str(), prog_.c_str());
    if (o->is_flag) {
      MU_CHECK(!has_value, "--%s is a switch and takes no value", name.c_str());
      o->set(negated ? "0" : "1");
    } else {
      if (!has_value) {
        MU_CHECK(i + 1 < argc, "--%s needs a value (%s)", name.c_str(), o->metavar.c_str());
        value = argv[++i];
      }
      o->set(value);
    }
    o->seen = true;
  }
  return true;
}

std::string Cli::usage() const {
  std::string s = "usage: " + prog_ + " [options]\n" + summary_ + "\n";
  for (const auto& o : opts_) {
    if (o.is_section) {
      s += "\n" + o.help + ":\n";
      continue;
    }
    std::string left = "  --" + o.name + (o.is_flag ? "" : " " + o.metavar);
    if (o.is_flag) left += ", --no-" + o.name;
    std::string line = left;
    if (line.size() < 30) line += std::string(30 - line.size(), ' ');
    else line += "\n" + std::string(30, ' ');
    line += o.help;
    if (!o.def.empty()) line += " [" + o.def + "]";
    s += line + "\n";
  }
  if (!epilog_.empty()) s += "\n" + epilog_ + "\n";
  return s;
}

int run_main(const char* prog, const std::function<int()>& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", prog, e.what());
    return 1;
  }
}

}  // namespace mu
