import UMTrainCLI

// Process start-up policy, before MPI is initialised and before any thread starts:
// glibc malloc keeps tensors in the heap (AllocatorTuning), and the best OpenBLAS kernel for
// this CPU is selected, possibly by re-executing this process (BLASKernelSelection).
AllocatorTuning.apply()
BLASKernelSelection.ensureBestKernel()
UMTrain.main()
