# Every dependency comes from find_package; nothing is downloaded. A missing one fails
# configure naming the Debian package that provides it.
macro(mu_require pkg debian)
  find_package(${pkg} ${ARGN} QUIET)
  if(NOT ${pkg}_FOUND)
    message(FATAL_ERROR "llm.mu needs ${pkg}: install it with `apt-get install ${debian}` "
                        "(or point CMAKE_PREFIX_PATH at it)")
  endif()
endmacro()

mu_require(CUDAToolkit "nvidia-cuda-toolkit (or NVIDIA's cuda-toolkit)")
if(NOT TARGET CUDA::cublasLt)
  message(FATAL_ERROR "llm.mu needs cuBLASLt (part of the CUDA toolkit: libcublaslt)")
endif()
mu_require(NCCL "libnccl-dev")
mu_require(nlohmann_json "nlohmann-json3-dev")
mu_require(OpenMP "libomp-dev (clang) or g++ (libgomp)")
if(MU_BUILD_TESTS)
  mu_require(GTest "googletest libgtest-dev")
endif()
message(STATUS "llm.mu: CUDA ${CUDAToolkit_VERSION}, NCCL ${NCCL_VERSION}, nlohmann_json ${nlohmann_json_VERSION}")
