# Every dependency comes from find_package; nothing is downloaded. A missing one fails
# configure naming the Debian package that provides it.
macro(mu_require pkg debian)
  find_package(${pkg} ${ARGN} QUIET)
  if(NOT ${pkg}_FOUND)
    message(FATAL_ERROR "llm.mu needs ${pkg}: install it with `apt-get install ${debian}` "
                        "(or point CMAKE_PREFIX_PATH at it)")
  endif()
endmacro()

find_package(Threads REQUIRED)
if(MU_CUDA_EMU)
  # The emulator stands in for the CUDA runtime, cuBLASLt and NCCL (kernels/cuda/emu/).
  add_library(mu_gpu_libs INTERFACE)
  target_link_libraries(mu_gpu_libs INTERFACE mu_emu)
  set(CUDAToolkit_VERSION "emulated")
  set(NCCL_VERSION "emulated")
  set(NCCL_FOUND TRUE)
else()
  mu_require(CUDAToolkit "nvidia-cuda-toolkit (or NVIDIA's cuda-toolkit)")
  if(NOT TARGET CUDA::cublasLt)
    # A toolkit without cuBLAS beside a PyTorch that brings its own (the nvidia-cublas wheel).
    include(MuNvidiaWheels)
    mu_find_in_nvidia_wheels(cublasLt.h "libcublasLt.so*" _mu_lt_inc _mu_lt_lib)
    if(NOT _mu_lt_lib)
      message(FATAL_ERROR "llm.mu needs cuBLASLt (part of the CUDA toolkit: libcublaslt; or PyTorch's nvidia-cublas)")
    endif()
    message(STATUS "llm.mu: cuBLASLt from a Python wheel: ${_mu_lt_lib}")
    add_library(CUDA::cublasLt UNKNOWN IMPORTED)
    set_target_properties(CUDA::cublasLt PROPERTIES IMPORTED_LOCATION "${_mu_lt_lib}"
                          INTERFACE_INCLUDE_DIRECTORIES "${_mu_lt_inc}")
  endif()
  add_library(mu_gpu_libs INTERFACE)
  target_link_libraries(mu_gpu_libs INTERFACE CUDA::cudart_static CUDA::cublasLt)
  # Optional, like MPI: without NCCL one GPU still trains, and `--comm nccl` (several GPUs)
  # says how to get it. A GPU node without libnccl-dev but with PyTorch gets PyTorch's NCCL
  # (cmake/FindNCCL.cmake looks in its nvidia-nccl wheel too).
  find_package(NCCL QUIET)
  if(NCCL_FOUND)
    target_link_libraries(mu_gpu_libs INTERFACE NCCL::nccl)
  else()
    set(NCCL_VERSION "not found")
    message(STATUS "llm.mu: NCCL not found: one GPU trains, several GPUs (--comm nccl) are off "
                   "(install libnccl-dev, or point NCCL_ROOT at an NCCL)")
  endif()
endif()
if(NCCL_FOUND)
  add_compile_definitions(MU_HAVE_NCCL=1)
endif()
mu_require(nlohmann_json "nlohmann-json3-dev")
mu_require(OpenMP "libomp-dev (clang) or g++ (libgomp)")
# Optional: MPI gives the cpu backend several ranks under mpirun (MpiComm, the `mpi` tests).
# Without it those are left out and make_comm says how to get them.
find_package(MPI COMPONENTS CXX QUIET)
if(MPI_CXX_FOUND)
  message(STATUS "llm.mu: MPI ${MPI_CXX_VERSION} found (${MPIEXEC_EXECUTABLE}): multi-rank cpu runs and the mpi tests are on")
else()
  message(STATUS "llm.mu: MPI not found: multi-rank cpu runs and the mpi tests are off "
                 "(install them with `apt-get install libopenmpi-dev openmpi-bin`)")
endif()
if(MU_BUILD_TESTS)
  mu_require(GTest "googletest libgtest-dev")
endif()
message(STATUS "llm.mu: CUDA ${CUDAToolkit_VERSION}, NCCL ${NCCL_VERSION}, nlohmann_json ${nlohmann_json_VERSION}")
