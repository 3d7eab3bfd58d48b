# The CUDA emulator's source rewrite (README.md here), run by the build for each .cu/.cuh:
#   k<<<g, b, smem, stream>>>(args)  ->  k | ::mu_emu::Config(__FILE__, __LINE__, g, b, smem, stream) | ::mu_emu::args(args)
#   extern __shared__ __align__(16) T name[];  ->  T* name = static_cast<T*>(::mu_emu::dynamic_smem());
# A #line directive keeps the original file and line numbers in errors and in __FILE__.
# Usage: cmake -DIN=<source> -DOUT=<generated> -P transform.cmake
file(READ "${IN}" s)
string(REPLACE "<<<" "| ::mu_emu::Config(__FILE__, __LINE__, " s "${s}")
string(REPLACE ">>>" ") | ::mu_emu::args" s "${s}")
string(REGEX REPLACE "extern __shared__ __align__\\(([0-9]+)\\) ([a-z ]+) ([A-Za-z_0-9]+)\\[\\];"
       "\\2* \\3 = static_cast<\\2*>(::mu_emu::dynamic_smem());" s "${s}")
if(s MATCHES "extern __shared__")
  message(FATAL_ERROR "${IN}: an `extern __shared__` declaration the emulator's rewrite does not know; "
                      "write it as `extern __shared__ __align__(N) type name[];`")
endif()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${s}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
