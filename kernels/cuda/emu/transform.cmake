# The CUDA emulator's source rewrite (README.md here), run by the build for each .cu/.cuh:
#   k<<<g, b, smem, stream>>>(args)  ->  k | ::mu_emu::Config(__FILE__, __LINE__, g, b, smem, stream) | ::mu_emu::args(args)
#   extern __shared__ __align__(16) T name[];  ->  T* name = static_cast<T*>(::mu_emu::dynamic_smem());
#   __shared__ T name[N][M];  ->  static T name[N][M]; ::mu_emu::shared_static(name, sizeof(name));
# A #line directive keeps the original file and line numbers in errors and in __FILE__.
# Usage: cmake -DIN=<source> -DOUT=<generated> -P transform.cmake
file(READ "${IN}" s)
string(REPLACE "<<<" "| ::mu_emu::Config(__FILE__, __LINE__, " s "${s}")
string(REPLACE ">>>" ") | ::mu_emu::args" s "${s}")
string(REGEX REPLACE "extern __shared__ __align__\\(([0-9]+)\\) ([a-z ]+) ([A-Za-z_0-9]+)\\[\\];"
       "\\2* \\3 = static_cast<\\2*>(::mu_emu::dynamic_smem());" s "${s}")
# Static shared memory: a static array (one per kernel, the blocks run one at a time),
# registered so that every block starts with it poisoned (NaN), as unwritten shared memory
# holds garbage on the device.
string(REGEX REPLACE "__shared__ ([A-Za-z_0-9:<> ]+) ([A-Za-z_0-9]+)((\\[[A-Za-z_0-9 +*]+\\])+);"
       "static \\1 \\2\\3; ::mu_emu::shared_static(\\2, sizeof(\\2));" s "${s}")
if(s MATCHES "__shared__")
  message(FATAL_ERROR "${IN}: a `__shared__` declaration the emulator's rewrite does not know; write it as "
                      "`__shared__ type name[N]...;` (one per statement) or `extern __shared__ __align__(N) type name[];`")
endif()
file(WRITE "${OUT}.tmp" "#line 1 \"${IN}\"\n${s}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
