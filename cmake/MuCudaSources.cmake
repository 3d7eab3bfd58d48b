# mu_cuda_sources(<out-var> <file>...): the .cu/.cuh files as this build compiles them.
# With nvcc: unchanged. In the emulated build (-DMU_CUDA_EMU=ON, kernels/cuda/emu/README.md):
# rewritten by kernels/cuda/emu/transform.cmake into C++ under ${CMAKE_BINARY_DIR}/emu_src
# (x.cu -> x.cu.cpp; headers keep their names and are found there first).
function(mu_cuda_sources out)
  if(NOT MU_CUDA_EMU)
    set(${out} ${ARGN} PARENT_SCOPE)
    return()
  endif()
  set(result)
  set(rewrite ${CMAKE_SOURCE_DIR}/kernels/cuda/emu/transform.cmake)
  foreach(src ${ARGN})
    file(RELATIVE_PATH rel ${CMAKE_SOURCE_DIR} ${src})
    if(src MATCHES "\\.cu$")
      set(gen ${CMAKE_BINARY_DIR}/emu_src/${rel}.cpp)
    else()
      set(gen ${CMAKE_BINARY_DIR}/emu_src/${rel})
    endif()
    add_custom_command(OUTPUT ${gen}
      COMMAND ${CMAKE_COMMAND} -DIN=${src} -DOUT=${gen} -P ${rewrite}
      DEPENDS ${src} ${rewrite} VERBATIM)
    list(APPEND result ${gen})
  endforeach()
  set(${out} ${result} PARENT_SCOPE)
endfunction()
