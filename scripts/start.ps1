# Windows equivalent of scripts/start.sh: sets everything up and starts the app on http://127.0.0.1:7860.
#   scripts\start.cmd [-CudaTorch] [app arguments]          (double-click, or from cmd.exe)
#   powershell -ExecutionPolicy Bypass -File scripts\start.ps1 [-CudaTorch] [app arguments]
# Steps: uv (on PATH, else the copy in %LOCALAPPDATA%\localstt\uv, else installed there with Python's
# venv + pip); the locked Python environment (uv provides a Python 3.11+ where none fits); on an NVIDIA
# GPU a CUDA build of torch with -CudaTorch (PyPI's torch for Windows is CPU-only); the one-time model
# export (the app still starts when it fails); then transcribe_ui.py with the other arguments, e.g.
#   scripts\start.cmd --port 8000
# Works with Windows PowerShell 5.1. There is no param() block on purpose: every argument except
# -CudaTorch goes to the app unchanged (PowerShell would otherwise try to bind --port and the like).
$ErrorActionPreference = 'Stop'
Set-Location -LiteralPath (Split-Path -Parent $PSScriptRoot)

$cudaTorch = $false
$appArgs = @()
foreach ($arg in $args) {
    if ("$arg" -eq '-CudaTorch') { $cudaTorch = $true } else { $appArgs += "$arg" }
}

$localAppData = $env:LOCALAPPDATA
if (-not $localAppData) { $localAppData = Join-Path $HOME 'AppData\Local' }
$tools = Join-Path $localAppData 'localstt'
$dest = Join-Path $tools 'uv'
$installedUv = Join-Path $dest 'Scripts\uv.exe'
$docs = 'https://docs.astral.sh/uv/getting-started/installation/'
$cudaIndex = 'https://download.pytorch.org/whl/cu128'

function Test-Uv([string]$Path) {
    # True if $Path runs and reports "uv X.Y.Z".
    $ErrorActionPreference = 'Continue'
    if (-not $Path -or -not (Test-Path -LiteralPath $Path -PathType Leaf)) { return $false }
    try { $version = & $Path --version 2>$null } catch { return $false }
    return (($LASTEXITCODE -eq 0) -and ("$version" -match '^uv \d'))
}

function Install-Uv {
    # Installs uv into $dest with the first Python that can (venv + pip): into a temporary folder next
    # to it, then renamed into place, so a killed run leaves nothing half-made. Returns uv.exe or $null.
    $ErrorActionPreference = 'Continue'
    $pythons = @()
    $candidates = @(
        @{Exe = 'py.exe'; Pre = @('-3')}, @{Exe = 'python.exe'; Pre = @()}, @{Exe = 'python3.exe'; Pre = @()}
    )
    foreach ($candidate in $candidates) {
        $found = Get-Command $candidate.Exe -CommandType Application -ErrorAction SilentlyContinue |
            Select-Object -First 1
        if ($found) { $pythons += @{Exe = $found.Path; Pre = $candidate.Pre} }
    }
    if ($pythons.Count -eq 0) { return $null }

    New-Item -ItemType Directory -Force -Path $tools | Out-Null
    # Temporary folders of runs that were killed midway.
    Get-ChildItem -LiteralPath $tools -Directory -Force -Filter '.uv-tmp.*' -ErrorAction SilentlyContinue |
        Where-Object { $_.LastWriteTime -lt (Get-Date).AddHours(-1) } |
        ForEach-Object { Remove-Item -LiteralPath $_.FullName -Recurse -Force -ErrorAction SilentlyContinue }
    $tmp = Join-Path $tools ('.uv-tmp.' + [guid]::NewGuid().ToString('N').Substring(0, 8))
    New-Item -ItemType Directory -Path $tmp | Out-Null
    $new = Join-Path $tmp 'uv'
    try {
        foreach ($python in $pythons) {
            if (Test-Path -LiteralPath $new) { Remove-Item -LiteralPath $new -Recurse -Force }
            $exe = $python.Exe
            $pre = $python.Pre
            Write-Host "Installing uv into $dest with $exe ..."
            & $exe @pre -m venv $new | Out-Host
            if ($LASTEXITCODE -ne 0) { continue }
            $venvPython = Join-Path $new 'Scripts\python.exe'
            if (-not (Test-Path -LiteralPath $venvPython)) { continue }
            & $venvPython -m pip install --no-input --disable-pip-version-check uv | Out-Host
            if (($LASTEXITCODE -ne 0) -or -not (Test-Uv (Join-Path $new 'Scripts\uv.exe'))) { continue }
            if (Test-Path -LiteralPath $dest) {
                # A broken earlier install is set aside first.
                try { [System.IO.Directory]::Move($dest, (Join-Path $tmp 'old')) } catch { continue }
            }
            for ($try = 1; $try -le 5; $try++) {
                # A virus scanner may hold a new file open for a moment.
                try { [System.IO.Directory]::Move($new, $dest); break } catch { Start-Sleep -Seconds 1 }
            }
            if (Test-Uv $installedUv) {
                Write-Host "Installed uv as $installedUv"
                return $installedUv
            }
        }
    } finally {
        Remove-Item -LiteralPath $tmp -Recurse -Force -ErrorAction SilentlyContinue
    }
    return $null
}

function Get-TorchCuda {
    # 'True' or 'False' as torch in .venv reports CUDA, or $null when torch cannot be imported.
    $ErrorActionPreference = 'Continue'
    $out = & $uv run --no-sync python -c 'import torch; print(torch.cuda.is_available())' 2>$null
    if ($LASTEXITCODE -ne 0) { return $null }
    return "$out".Trim()
}

# 1. uv
$uv = $null
$onPath = Get-Command uv.exe -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
if ($onPath -and (Test-Uv $onPath.Path)) { $uv = $onPath.Path }
elseif (Test-Uv $installedUv) { $uv = $installedUv }
else { $uv = Install-Uv }
if (-not $uv) {
    [Console]::Error.WriteLine('uv could not be installed (no Python here could do it); install it with: ' +
        'powershell -ExecutionPolicy ByPass -c "irm https://astral.sh/uv/install.ps1 | iex" (see ' + $docs +
        '), then run this again.')
    exit 1
}

# 2. The locked Python environment. With -CudaTorch, torch is left out of the sync (and a CUDA build
# already installed is kept) so that step 3 can put in the CUDA build.
$gpu = [bool](Get-Command nvidia-smi -ErrorAction SilentlyContinue)
if ($cudaTorch -and -not $gpu) {
    Write-Warning 'No NVIDIA GPU found (nvidia-smi is missing), so -CudaTorch is ignored.'
    $cudaTorch = $false
}
$syncArgs = @('sync', '--locked', '--no-dev', '--compile-bytecode')  # bytecode: NeMo starts ~15 s faster
if ($cudaTorch) { $syncArgs += @('--inexact', '--no-install-package', 'torch') }
& $uv @syncArgs
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }

# 3. A CUDA build of torch where there is an NVIDIA GPU.
if ($gpu) {
    $cuda = Get-TorchCuda
    if (($cuda -ne 'True') -and $cudaTorch) {
        Write-Host "Installing a CUDA build of torch from $cudaIndex ..."
        & $uv pip install --reinstall-package torch torch --index-url $cudaIndex
        $cuda = Get-TorchCuda
        if ($cuda -ne 'True') { Write-Warning 'torch still reports no CUDA; the app runs on the CPU.' }
    } elseif ($cuda -eq 'False') {
        Write-Host ('An NVIDIA GPU is present but torch in .venv has no CUDA (the torch on PyPI for ' +
            'Windows is CPU-only), so the app runs on the CPU. For a CUDA build start with: ' +
            'scripts\start.cmd -CudaTorch (it runs: uv pip install --reinstall-package torch torch ' +
            "--index-url $cudaIndex, and keeps that build on every start with -CudaTorch; a start " +
            'without it goes back to the locked CPU build).')
    }
}

# 4. The one-time model export (a no-op once done), then the app.
& $uv run --no-sync python export_models.py
if ($LASTEXITCODE -ne 0) {
    Write-Warning 'Some models are not exported yet (see above); the app starts and shows what is missing.'
}
& $uv run --no-sync python transcribe_ui.py @appArgs
exit $LASTEXITCODE
