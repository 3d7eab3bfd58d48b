// GNU-style long options (--lr 3e-4, --lr=3e-4, --flag / --no-flag) from one option table:
// the parser and the --help text read the same entries, so they cannot drift apart.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace mu {

class Cli {
 public:
  Cli(std::string prog, std::string summary);

  // Each add_* registers --name with a help line; the variable's current value is the default.
  void add_string(const std::string& name, std::string* v, const std::string& metavar, const std::string& help);
  void add_int(const std::string& name, int* v, const std::string& help);
  void add_int64(const std::string& name, int64_t* v, const std::string& help);
  void add_float(const std::string& name, double* v, const std::string& help);
  // --name sets true; --no-name sets false.
  void add_flag(const std::string& name, bool* v, const std::string& help);
  // A heading that groups the options added after it in --help.
  void section(const std::string& title);
  // Free text printed after the options (examples).
  void epilog(const std::string& text) { epilog_ = text; }

  // Parses argv. Returns false when --help was given (usage already printed to stdout);
  // throws mu::Error on an unknown option, a missing or malformed value.
  bool parse(int argc, char** argv);
  bool given(const std::string& name) const;  // was --name on the command line?
  // Every option's current value as text (doubles exactly: %.17g), in table order.
  std::vector<std::pair<std::string, std::string>> values() const;
  std::string usage() const;

 public:
  struct Opt {
    std::string name, metavar, help, def;
    bool is_flag = false;
    bool is_section = false;
    std::function<void(const std::string&)> set;
    std::function<std::string()> get;
    bool seen = false;
  };

 private:
  Opt* find(const std::string& name);
  std::string prog_, summary_, epilog_;
  std::vector<Opt> opts_;
};

// Runs `body` and turns a mu::Error (or any std::exception) into "prog: error: ..." on stderr
// and exit status 1, so every tool fails with a message, never a signal.
int run_main(const char* prog, const std::function<int()>& body);

}  // namespace mu
